"""toolkit.broadcast: fan-out, bounded buffers and their overflow policies, backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from toolkit.broadcast import (
    Broadcast,
    BroadcastBackend,
    MemoryBackend,
    Subscriber,
    SubscriberOverflow,
)


async def take(subscriber: Subscriber, count: int) -> list[Any]:
    messages = []
    async for message in subscriber:
        messages.append(message)
        if len(messages) == count:
            break
    return messages


async def test_subscribers_get_their_channels_messages_in_order() -> None:
    broadcast = Broadcast()
    await broadcast.publish("news", "before anyone listened")
    async with (
        broadcast.subscribe("news") as first,
        broadcast.subscribe("news") as second,
        broadcast.subscribe("sport") as other,
    ):
        for number in range(3):
            await broadcast.publish("news", number)
        await broadcast.publish("sport", {"goal": 1})
        assert await take(first, 3) == [0, 1, 2]
        assert await take(second, 3) == [0, 1, 2]
        assert await take(other, 1) == [{"goal": 1}]
        assert first.channel == "news"


async def test_a_subscriber_that_never_reads_stalls_nobody() -> None:
    broadcast = Broadcast(buffer_size=8)
    count = 300
    latencies: list[float] = []

    async def reader(subscriber: Subscriber, received: list[int]) -> None:
        async for message in subscriber:
            number, sent_at = message
            latencies.append(trio.current_time() - sent_at)
            received.append(number)
            if number == count - 1:
                return

    got_a: list[int] = []
    got_b: list[int] = []
    with trio.fail_after(5):
        async with (
            broadcast.subscribe("feed") as stuck,
            broadcast.subscribe("feed") as a,
            broadcast.subscribe("feed") as b,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(reader, a, got_a)
            nursery.start_soon(reader, b, got_b)
            await trio.sleep(0)
            for number in range(count):
                await broadcast.publish("feed", (number, trio.current_time()))
                if number % 10 == 0:
                    await trio.sleep(0.001)  # a publisher with a pace, as in a chat
    assert got_a == got_b == list(range(count))
    assert max(latencies) < 0.5
    # The stuck subscriber kept only the newest messages and counted what it lost.
    assert stuck.dropped == count - 8
    assert [number for number, _ in await take(stuck, 8)] == list(range(count - 8, count))


async def test_publishing_never_waits_for_a_full_buffer() -> None:
    broadcast = Broadcast(buffer_size=1)
    async with broadcast.subscribe("x") as subscriber:
        with trio.fail_after(1):
            for number in range(1000):
                await broadcast.publish("x", number)
        assert subscriber.dropped == 999
        assert await take(subscriber, 1) == [999]


async def test_disconnect_policy_cuts_off_a_slow_subscriber_after_its_backlog() -> None:
    broadcast = Broadcast(buffer_size=3, on_overflow="disconnect")
    async with broadcast.subscribe("x") as slow, broadcast.subscribe("x") as fine:
        for number in range(3):
            await broadcast.publish("x", number)
        assert await take(fine, 3) == [0, 1, 2]
        await broadcast.publish("x", 3)  # the slow buffer is full: cut off
        await broadcast.publish("x", 4)
        assert await take(fine, 2) == [3, 4]
        received = []
        with pytest.raises(SubscriberOverflow, match="'x' fell a full buffer behind"):
            async for message in slow:
                received.append(message)
        assert received == [0, 1, 2]


async def test_per_subscription_options_override_the_hubs() -> None:
    broadcast = Broadcast(buffer_size=100)
    async with broadcast.subscribe("x", buffer_size=2, on_overflow="disconnect") as narrow:
        for number in range(3):
            await broadcast.publish("x", number)
        with pytest.raises(SubscriberOverflow):
            await take(narrow, 3)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="buffer_size must be at least 1"):
        Broadcast(buffer_size=0)
    with pytest.raises(ValueError, match='on_overflow must be "drop_oldest" or "disconnect"'):
        Broadcast(on_overflow="block")  # type: ignore[arg-type]


async def test_a_cancelled_publish_delivers_nothing() -> None:
    broadcast = Broadcast()
    async with broadcast.subscribe("x") as subscriber:
        with trio.CancelScope() as scope:
            scope.cancel()
            await broadcast.publish("x", "lost")
        await broadcast.publish("x", "kept")
        assert await take(subscriber, 1) == ["kept"]


async def test_leaving_the_subscription_stops_delivery_to_it() -> None:
    broadcast = Broadcast()
    async with broadcast.subscribe("x") as subscriber:
        pass
    await broadcast.publish("x", "after")
    assert await take(subscriber, 1) == []  # its iteration is over


class RecordingBackend(BroadcastBackend):
    """A stand-in for a networked backend: a listener task delivers what a 'server' relays."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.server_send, self.server_receive = trio.open_memory_channel[tuple[str, Any]](100)

    async def publish(self, channel: str, message: Any) -> None:
        self.calls.append(("publish", channel))
        await self.server_send.send((channel, message))

    async def subscribe(self, channel: str) -> None:
        self.calls.append(("subscribe", channel))

    async def unsubscribe(self, channel: str) -> None:
        self.calls.append(("unsubscribe", channel))

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[None]:
        self.calls.append(("connect", ""))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._listen)
            yield
            nursery.cancel_scope.cancel()
        self.calls.append(("disconnect", ""))

    async def _listen(self) -> None:
        async for channel, message in self.server_receive:
            self.deliver(channel, message)


async def test_a_backend_plugs_in_without_changing_app_code() -> None:
    backend = RecordingBackend()
    broadcast = Broadcast(backend)
    async with broadcast:
        async with broadcast.subscribe("x") as first, broadcast.subscribe("x") as second:
            await broadcast.publish("x", "over the wire")
            with trio.fail_after(1):
                assert await take(first, 1) == ["over the wire"]
                assert await take(second, 1) == ["over the wire"]
        async with broadcast.subscribe("y") as left_open:
            pass
    assert backend.calls == [
        ("connect", ""),
        ("subscribe", "x"),  # once, for the first local subscriber
        ("publish", "x"),
        ("unsubscribe", "x"),  # once, after the last
        ("subscribe", "y"),
        ("unsubscribe", "y"),
        ("disconnect", ""),
    ]
    assert await take(left_open, 1) == []


async def test_leaving_the_hub_ends_every_subscription() -> None:
    broadcast = Broadcast()
    ended = trio.Event()

    async def listen() -> None:
        async with broadcast.subscribe("x") as subscriber:
            async for _ in subscriber:
                pass
        ended.set()

    async with trio.open_nursery() as nursery:
        async with broadcast:
            nursery.start_soon(listen)
            await trio.sleep(0.01)
        with trio.fail_after(1):
            await ended.wait()


def test_the_default_backend_is_in_memory() -> None:
    assert isinstance(Broadcast().backend, MemoryBackend)
