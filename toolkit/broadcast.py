"""Publish/subscribe for chat and notification apps: a hub over trio memory channels.

::

    broadcast = Broadcast()

    await broadcast.publish("room:lobby", "hello")

    async with broadcast.subscribe("room:lobby") as subscriber:
        async for message in subscriber:
            ...

Each subscriber has its own bounded buffer (``buffer_size``), and publishing only ever
puts messages into buffers, so a slow subscriber never stalls the publisher or the other
subscribers. When a subscriber's buffer is full, ``on_overflow`` decides:

- ``"drop_oldest"`` (the default): its oldest buffered message is dropped to make room
  (``subscriber.dropped`` counts them). Right for live feeds, where news beats history.
- ``"disconnect"``: the subscriber is cut off; it reads what it had buffered, then its
  iteration raises ``SubscriberOverflow``. Right when a gap must not go unnoticed.

The hub fans messages out to this process's subscribers; a ``BroadcastBackend`` carries
them between processes. ``MemoryBackend`` (the default) is this process alone. Another
backend (Redis pub/sub, say) plugs in without changing app code: pass it as ``backend``
and run the app inside ``async with broadcast:``, which connects it. Messages are any
object in memory; a networked backend will want strings or bytes.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from types import TracebackType
from typing import Any, Literal, Self

import trio

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "Broadcast",
    "BroadcastBackend",
    "MemoryBackend",
    "Subscriber",
    "SubscriberOverflow",
]

OnOverflow = Literal["drop_oldest", "disconnect"]
Deliver = Callable[[str, Any], None]

#: Default number of messages a subscriber may have waiting before ``on_overflow`` applies.
DEFAULT_BUFFER_SIZE = 100
#: Seconds a backend gets to unsubscribe when a subscription ends, even while cancelled.
UNSUBSCRIBE_TIMEOUT = 5.0


class SubscriberOverflow(Exception):
    """A ``disconnect`` subscriber fell a full buffer behind and was cut off."""


class BroadcastBackend(abc.ABC):
    """Carries published messages to the hub of every process subscribed to their channel.

    ``publish`` sends a message on its way; every message that arrives (this process's
    own included) goes to ``self.deliver(channel, message)``, which never blocks.
    ``subscribe``/``unsubscribe`` tell the backend when this process gains its first
    subscriber to a channel and loses its last. ``connect()`` is entered for as long as
    the app runs (``async with broadcast:``): a networked backend listens there.
    """

    deliver: Deliver

    def bind(self, deliver: Deliver) -> None:
        """Called once by the ``Broadcast`` that owns this backend."""
        self.deliver = deliver

    @abc.abstractmethod
    async def publish(self, channel: str, message: Any) -> None:
        """Send ``message`` to every subscriber of ``channel``, in every process."""

    async def subscribe(self, channel: str) -> None:
        """This process has its first subscriber to ``channel`` (nothing to do by default)."""
        return None

    async def unsubscribe(self, channel: str) -> None:
        """This process has no subscriber to ``channel`` any more (nothing to do by default)."""
        return None

    def connect(self) -> AbstractAsyncContextManager[None]:
        """Stay connected for the duration of the block (nothing to do in memory)."""
        return nullcontext()


class MemoryBackend(BroadcastBackend):
    """This process alone: publishing delivers at once."""

    async def publish(self, channel: str, message: Any) -> None:
        # Either the message is delivered or Cancelled is raised, never both.
        await trio.lowlevel.checkpoint_if_cancelled()
        self.deliver(channel, message)
        await trio.lowlevel.cancel_shielded_checkpoint()


class Subscriber:
    """One subscription to ``channel``: iterate it for messages, in the order published."""

    __slots__ = ("_cut_off", "_drop_oldest", "_receive", "_send", "channel", "dropped")

    def __init__(self, channel: str, buffer_size: int, on_overflow: OnOverflow) -> None:
        self.channel = channel
        #: Messages dropped so far to make room (``drop_oldest``).
        self.dropped = 0
        self._send, self._receive = trio.open_memory_channel[Any](buffer_size)
        self._drop_oldest = on_overflow == "drop_oldest"
        self._cut_off = False

    def _offer(self, message: Any) -> None:
        """Buffer ``message`` without ever waiting; a full buffer applies the overflow policy."""
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            if self._drop_oldest:
                self._receive.receive_nowait()  # a full buffer has no reader waiting
                self.dropped += 1
                self._send.send_nowait(message)
            else:
                self._cut_off = True
                self._send.close()
        except trio.ClosedResourceError:
            pass  # cut off, or the hub has closed

    def _close(self) -> None:
        self._send.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            if self._cut_off:
                raise SubscriberOverflow(
                    f"Subscriber to {self.channel!r} fell a full buffer behind and was cut off"
                ) from None
            raise StopAsyncIteration from None


class Broadcast:
    """A publish/subscribe hub; see the module docstring for buffers, overflow and backends.

    ``buffer_size`` and ``on_overflow`` are the defaults for ``subscribe()``.
    """

    def __init__(
        self,
        backend: BroadcastBackend | None = None,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        on_overflow: OnOverflow = "drop_oldest",
    ) -> None:
        _check_options(buffer_size, on_overflow)
        self.backend = MemoryBackend() if backend is None else backend
        self.backend.bind(self._deliver)
        self.buffer_size = buffer_size
        self.on_overflow: OnOverflow = on_overflow
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._exit_stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.backend.connect())
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._exit_stack = self._exit_stack, None
        assert stack is not None, "Broadcast was not entered"
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber._close()  # their iterations end
        await stack.__aexit__(exc_type, exc_value, traceback)

    async def publish(self, channel: str, message: Any) -> None:
        """Publish ``message`` on ``channel``; returns once it is in every local buffer."""
        await self.backend.publish(channel, message)

    @asynccontextmanager
    async def subscribe(
        self,
        channel: str,
        *,
        buffer_size: int | None = None,
        on_overflow: OnOverflow | None = None,
    ) -> AsyncIterator[Subscriber]:
        """Subscribe to ``channel`` for the duration of the block; messages published
        from now on arrive in the yielded ``Subscriber``."""
        size = self.buffer_size if buffer_size is None else buffer_size
        policy = self.on_overflow if on_overflow is None else on_overflow
        _check_options(size, policy)
        subscriber = Subscriber(channel, size, policy)
        subscribers = self._subscribers.setdefault(channel, set())
        first = not subscribers
        subscribers.add(subscriber)
        try:
            if first:
                await self.backend.subscribe(channel)
            yield subscriber
        finally:
            subscriber._close()
            subscribers.discard(subscriber)
            if not subscribers and self._subscribers.get(channel) is subscribers:
                del self._subscribers[channel]
                with trio.move_on_after(UNSUBSCRIBE_TIMEOUT, shield=True):
                    await self.backend.unsubscribe(channel)

    def _deliver(self, channel: str, message: Any) -> None:
        for subscriber in self._subscribers.get(channel, ()):
            subscriber._offer(message)


def _check_options(buffer_size: int, on_overflow: str) -> None:
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be at least 1, not {buffer_size}")
    if on_overflow not in ("drop_oldest", "disconnect"):
        raise ValueError(f'on_overflow must be "drop_oldest" or "disconnect", not {on_overflow!r}')
