"""WebSocket sessions: Starlette's ``WebSocket`` API, each session run as a scoped trio task.

A routed session (``WebSocketRoute``, ``websocket_session``, ``WebSocketEndpoint``) runs inside
``run_session``, which gives it this task tree::

    server task for the connection
    └─ run_session
       └─ handler(websocket) ......... in the session's cancel scope
    trio system task: companion ...... started on first need (toolkit.companion)
    └─ nursery
       ├─ children ................... started with websocket.nursery.start_soon(...)
       └─ receive pump ............... only while needed (see _Session)
    trio system task: watchdog ....... one per run, ticks while sessions run

- One task at a time reads from the server: the handler itself whenever it
  comes back to ``receive``; otherwise the pump, which the watchdog starts for
  a handler away for a whole tick (``WATCH_DELAY``) and which a child's
  ``receive`` starts at once. So a peer leaving is noticed even by a handler
  that only sends, and a handler that keeps reading costs no extra task.
- Every message is screened: over the app's ``websocket_max_message_size``
  the session closes with 1009.
- When the peer disconnects, the children are cancelled at once. The handler
  is cancelled too, unless it is waiting for a message: then it gets the
  disconnect (``WebSocketDisconnect``, as in Starlette) and has about
  ``websocket_disconnect_grace`` seconds (timed by the watchdog) to clean up before it is
  cancelled.
  (The peer's answer to the app's own close cancels nothing.)
- When the handler returns, the children are cancelled and the socket is closed.
- An exception in the handler or a child cancels the rest and propagates
  (unwrapped from its exception group) to the exceptions layer, then to the
  server, which closes with 1011 and logs it once. ``WebSocketDisconnect``
  escaping the handler is the peer leaving, not an error.

Sends are serialised (a mutex), so child tasks may send at once. After the
peer has gone a send raises ``WebSocketDisconnect``; after the app closed the
socket it raises ``WebSocketDisconnected``. ``close()`` is idempotent.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import trio

from toolkit.companion import Companion, TaskNursery
from toolkit.exceptions import WebSocketException
from toolkit.requests import HTTPConnection
from toolkit.status import (
    WS_1003_UNSUPPORTED_DATA,
    WS_1008_POLICY_VIOLATION,
    WS_1009_MESSAGE_TOO_BIG,
)
from toolkit.types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from toolkit.responses import Response

__all__ = [
    "DEFAULT_DISCONNECT_GRACE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MalformedMessage",
    "WebSocket",
    "WebSocketClose",
    "WebSocketDisconnect",
    "WebSocketDisconnected",
    "WebSocketState",
    "decode_json",
    "run_session",
]

#: Default limit on one incoming message, in bytes (1 MiB); larger ones close the session with 1009.
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
#: Default seconds a handler told of a disconnect gets to clean up before it is cancelled.
DEFAULT_DISCONNECT_GRACE = 5.0
#: Where the running session's ``WebSocket`` is kept in the scope (for the exceptions layer).
SESSION_KEY = "toolkit.websocket"
#: Messages the pump reads ahead of the handler before it stops reading (backpressure).
INBOX_SIZE = 4
#: The watchdog's tick, in seconds: a handler away from ``receive`` for a whole tick gets a
#: pump reading for it, so one busy elsewhere learns of a disconnect within about two ticks.
WATCH_DELAY = 0.25


class WebSocketState(enum.Enum):
    """Where one side of the connection is: handshake, open, closed, or denied with a response."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2
    RESPONSE = 3


class WebSocketDisconnect(Exception):
    """The peer closed the connection (or it was closed for it), with this code and reason.

    Behind hypercorn the code is 1006 for any close the client started (its code is lost).
    """

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""
        super().__init__(code, self.reason)


class WebSocketDisconnected(RuntimeError):
    """The app used a WebSocket it had already closed, or one not accepted yet."""


class MalformedMessage(WebSocketException, ValueError):
    """A message the handler cannot use (wrong frame type, bad JSON): closes with 1003."""

    def __init__(self, reason: str) -> None:
        super().__init__(WS_1003_UNSUPPORTED_DATA, reason)


class WebSocket(HTTPConnection):
    """One WebSocket connection: the handshake's scope plus messages both ways.

    ``client_state`` follows the messages the app has received, ``application_state``
    the ones it has sent. Inside a session (see the module docstring) messages come
    from the receive pump and ``nursery`` holds the session's child tasks.
    """

    __slots__ = (
        "_disconnect",
        "_receive",
        "_send",
        "_send_queue",
        "_sending",
        "_session",
        "application_state",
        "client_state",
    )

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        super().__init__(scope)
        self._receive = receive
        self._send = send
        self.client_state = WebSocketState.CONNECTING
        self.application_state = WebSocketState.CONNECTING
        self._sending = False
        self._send_queue: trio.lowlevel.ParkingLot | None = None  # made on the first contention
        # The peer's disconnect message, once the app or the session has seen it.
        self._disconnect: Message | None = None
        self._session: _Session | None = None  # while run_session runs

    @property
    def nursery(self) -> TaskNursery:
        """The session's nursery: tasks started here are cancelled when the session ends."""
        if self._session is None:
            raise RuntimeError(
                "websocket.nursery exists only while a session runs "
                "(a WebSocketRoute, websocket_session or WebSocketEndpoint)"
            )
        return self._session.start_companion().nursery

    @property
    def close_code(self) -> int | None:
        """The peer's close code once it has gone (1006 behind hypercorn), else None."""
        return None if self._disconnect is None else self._disconnect.get("code", 1000)

    # -- receiving

    async def receive(self) -> Message:
        """The next ASGI message: ``websocket.connect``, ``.receive`` or ``.disconnect``."""
        if self.client_state is WebSocketState.DISCONNECTED:
            raise WebSocketDisconnected(
                'Cannot call "receive" once a disconnect message has been received.'
            )
        session = self._session
        message = await (self._receive() if session is None else session.next_message())
        kind = message["type"]
        if kind == "websocket.receive" and self.client_state is WebSocketState.CONNECTED:
            return message
        if kind == "websocket.disconnect":
            self.client_state = WebSocketState.DISCONNECTED
            self._disconnect = message
        elif kind == "websocket.connect" and self.client_state is WebSocketState.CONNECTING:
            self.client_state = WebSocketState.CONNECTED
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} from the server")
        return message

    async def _receive_data(self) -> Message:
        if self.application_state is not WebSocketState.CONNECTED:
            raise WebSocketDisconnected('WebSocket is not connected. Need to call "accept" first.')
        message = await self.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        return message

    async def receive_text(self) -> str:
        """The next text message; ``WebSocketDisconnect`` once the peer has gone."""
        text: str | None = (await self._receive_data()).get("text")
        if text is None:
            raise MalformedMessage("Expected a text message, got a binary one")
        return text

    async def receive_bytes(self) -> bytes:
        """The next binary message; ``WebSocketDisconnect`` once the peer has gone."""
        data: bytes | None = (await self._receive_data()).get("bytes")
        if data is None:
            raise MalformedMessage("Expected a binary message, got a text one")
        return data

    async def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        """The next message decoded as JSON (from a text or a binary frame).

        Malformed JSON raises ``MalformedMessage``, which closes the session with 1003.
        """
        if mode not in ("text", "binary"):
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        return decode_json(await self._receive_data())

    async def iter_text(self) -> AsyncIterator[str]:
        """Text messages until the peer disconnects."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            pass

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Binary messages until the peer disconnects."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            pass

    async def iter_json(self) -> AsyncIterator[Any]:
        """JSON messages until the peer disconnects."""
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            pass

    # -- sending

    async def send(self, message: Message, *, quiet_close: bool = False) -> None:
        """Send an ASGI message, one task at a time; raises if the state forbids it.

        Senders queue in turn (a mutex: a flag plus a parking lot, lighter than ``trio.Lock``
        on this hot path), so concurrent sends never interleave or race the state.
        """
        if self._sending:
            if self._send_queue is None:
                self._send_queue = trio.lowlevel.ParkingLot()
            await self._send_queue.park()  # woken holding the turn
        else:
            self._sending = True
        try:
            if (
                # The common case first, without a call: data on an open connection.
                message["type"] == "websocket.send"
                and self.application_state is WebSocketState.CONNECTED
                and self._disconnect is None
            ) or self._advance(message, quiet_close):
                await self._send(message)
        finally:
            if self._send_queue:
                self._send_queue.unpark()  # hand the turn on
            else:
                self._sending = False

    def _advance(self, message: Message, quiet_close: bool) -> bool:
        """Move ``application_state`` for ``message``; whether the server should get it."""
        kind = message["type"]
        state = self.application_state
        gone = self._disconnect is not None
        if state is WebSocketState.CONNECTED:
            if kind == "websocket.send":
                if gone:
                    raise self._gone()
                return True
            if kind == "websocket.close":
                self.application_state = WebSocketState.DISCONNECTED
                return not gone
        elif state is WebSocketState.CONNECTING:
            if kind == "websocket.accept":
                if gone:
                    raise self._gone()
                self.application_state = WebSocketState.CONNECTED
                return True
            if kind == "websocket.close":
                self.application_state = WebSocketState.DISCONNECTED
                return not gone
            if kind == "websocket.http.response.start":
                self.application_state = WebSocketState.RESPONSE
                return True
        elif state is WebSocketState.RESPONSE:
            if kind == "websocket.http.response.body":
                if not message.get("more_body", False):
                    self.application_state = WebSocketState.DISCONNECTED
                return True
        elif quiet_close and kind == "websocket.close":
            return False
        else:
            raise WebSocketDisconnected('Cannot call "send" once a close message has been sent.')
        raise RuntimeError(f"Cannot send {kind!r} while the WebSocket is {state.name}")

    def _gone(self) -> WebSocketDisconnect:
        assert self._disconnect is not None
        return WebSocketDisconnect(
            self._disconnect.get("code", 1000), self._disconnect.get("reason")
        )

    async def accept(
        self, subprotocol: str | None = None, headers: Iterable[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Accept the handshake, with one of ``scope["subprotocols"]`` and extra headers."""
        if self.client_state is WebSocketState.CONNECTING:
            await self.receive()  # the websocket.connect message
        await self.send(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": list(headers or ())}
        )

    async def send_text(self, data: str) -> None:
        await self.send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self.send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        """Send ``data`` as compact JSON, in a text frame or (``mode="binary"``) UTF-8 bytes."""
        if mode not in ("text", "binary"):
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            await self.send({"type": "websocket.send", "text": text})
        else:
            await self.send({"type": "websocket.send", "bytes": text.encode("utf-8")})

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the connection (before ``accept``: refuse it); does nothing if already closed."""
        message = {"type": "websocket.close", "code": code, "reason": reason or ""}
        await self.send(message, quiet_close=True)

    async def send_denial_response(self, response: Response) -> None:
        """Refuse the handshake with an HTTP response where the server supports it.

        Otherwise the connection is closed before ``accept``, which servers answer with 403.
        """
        if self.application_state is not WebSocketState.CONNECTING:
            raise RuntimeError("A denial response can only be sent before accept()")
        if "websocket.http.response" in self.scope.get("extensions", {}):
            await response(self.scope, self.receive, self.send)
        else:
            await self.close(code=WS_1008_POLICY_VIOLATION)


async def run_session(
    websocket: WebSocket, handler: Callable[[WebSocket], Awaitable[None]]
) -> None:
    """Run ``handler(websocket)`` as a session: cancellable, with its children, and a clean end.

    See the module docstring for what a disconnect, a return and an error do.
    """
    if websocket._session is not None:
        raise RuntimeError("This WebSocket already runs a session")
    websocket.scope[SESSION_KEY] = websocket
    session = websocket._session = _Session(websocket)
    watchdog = _watchdog()
    watchdog.add(session)
    handler_error: BaseException | None = None
    try:
        with session.handler_scope:
            await handler(websocket)
    except WebSocketDisconnect:
        pass  # the peer left: not an error
    except BaseException as exc:
        handler_error = exc
    finally:
        watchdog.sessions.discard(session)
    try:
        if session.companion is not None:
            # The handler is done: its children and the pump go.
            session.companion.cancel()
            await session.companion.join()
    finally:
        websocket._session = None
    error = _session_error(handler_error, session.child_error)
    if error is not None:
        raise error  # the exceptions layer finds the WebSocket in the scope, and parts them
    # The scope holds the WebSocket, which holds the scope: part them, or every session is
    # left to the garbage collector.
    del websocket.scope[SESSION_KEY]
    await websocket.close()


class _Session:
    """A running session: who reads from the server, what a disconnect stops, its children.

    One task at a time calls the server's ``receive``. The handler reads directly when nothing
    else is reading, so a session costs no extra task while its handler keeps coming back to
    ``receive``. The pump, a helper started only when needed, reads in its stead: when the
    handler has been away from ``receive`` for a whole watchdog tick (busy elsewhere: only a
    reader notices the peer leaving), or when another task waits for a message. What the pump
    reads goes through ``inbox``; it stops once it has handed a message to the handler waiting
    for it. Every message is screened once, by whoever read it: the size limit, the disconnect.

    The children and the pump run in the session's companion task (``toolkit.companion``),
    started on first need; the handler runs in ``handler_scope`` in the session's own task.
    """

    __slots__ = (
        "__weakref__",
        "child_error",
        "companion",
        "direct_reading",
        "gone_at",
        "handler_receiving",
        "handler_scope",
        "handler_task",
        "inbox",
        "inbox_send",
        "limit",
        "other_receivers",
        "pending",
        "pump_reading",
        "pump_running",
        "reads",
        "seen_reads",
        "told_of_disconnect",
        "websocket",
    )

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.companion: Companion | None = None
        self.child_error: BaseException | None = None
        self.limit: int | None = _setting(websocket, "websocket_max_message_size")
        # Made when the pump first starts or a second receiver waits.
        self.inbox: trio.MemoryReceiveChannel[Message] | None = None
        self.inbox_send: trio.MemorySendChannel[Message] | None = None
        self.handler_task = trio.lowlevel.current_task()
        self.handler_scope = trio.CancelScope()
        self.handler_receiving = False  # the handler waits for a message (direct or inbox)
        self.direct_reading = False  # the handler is inside the server's receive
        self.reads = 0  # the handler's direct reads so far
        self.seen_reads = 0  # ... as the watchdog saw them at its last tick
        self.other_receivers = 0  # tasks other than the handler waiting for a message
        self.pending = 0  # messages the pump has handed to the inbox, not yet taken
        self.pump_running = False  # the pump is started (it reads, or hands over)
        self.pump_reading = False  # the pump is inside the server's receive (or screening)
        self.told_of_disconnect = False  # the peer left while the handler was receiving
        self.gone_at = math.inf  # ... as first seen by the watchdog

    def start_companion(self) -> Companion:
        """The task hosting ``websocket.nursery`` and the pump, started on first need."""
        if self.companion is None:
            path = self.websocket.scope.get("path", "")
            self.companion = Companion(self, f"toolkit WebSocket companion {path}")
        return self.companion

    def child_failed(self, error: BaseException) -> None:
        """A child (or the pump) failed: the session ends with that error."""
        if self.child_error is None:
            self.child_error = error
        self.handler_scope.cancel()

    async def next_message(self) -> Message:
        """The next message for whoever calls ``websocket.receive()`` in this session."""
        if not self.pending:
            if self.websocket._disconnect is not None:  # the peer is gone, all read
                return self.websocket._disconnect
            if not self.pump_running and trio.lowlevel.current_task() is self.handler_task:
                # The handler reads for itself (see the class docstring).
                self.direct_reading = self.handler_receiving = True
                try:
                    message = await self.websocket._receive()
                    if not self._passes(message):
                        message = await self._stop(message)
                    return message
                finally:
                    self.direct_reading = self.handler_receiving = False
                    self.reads += 1
                    if self.other_receivers and not self.pump_running:
                        self._start_pump()
        else:
            assert self.inbox is not None
            try:
                message = self.inbox.receive_nowait()
            except trio.WouldBlock:  # another receiver took it
                pass
            else:
                self.pending -= 1
                return message
        in_handler = trio.lowlevel.current_task() is self.handler_task
        if in_handler:
            self.handler_receiving = True
        else:
            self.other_receivers += 1
        inbox = self._open_inbox()
        if not self.pump_running and not self.direct_reading:
            self._start_pump()  # (while the handler reads, its read's end starts the pump)
        try:
            message = await inbox.receive()
        except trio.EndOfChannel:  # the peer went while we waited
            disconnect = self.websocket._disconnect
            assert disconnect is not None
            return disconnect
        finally:
            if in_handler:
                self.handler_receiving = False
            else:
                self.other_receivers -= 1
        self.pending -= 1
        return message

    def tick(self, now: float, grace: float | None) -> None:
        """The watchdog's look. A handler told of the disconnect more than ``grace`` seconds
        ago is cancelled. A handler neither reading nor done reading since the last tick is
        busy elsewhere, so the pump reads (and watches for a disconnect) for it."""
        if self.told_of_disconnect:
            if self.gone_at == math.inf:
                self.gone_at = now  # the first tick since: a grace of about ``grace``
            elif grace is not None and now >= self.gone_at + grace:
                self.handler_scope.cancel()
            return
        reads = self.reads
        if reads == self.seen_reads and not self.direct_reading and not self.pump_running:
            self._start_pump()
        self.seen_reads = reads

    def _open_inbox(self) -> trio.MemoryReceiveChannel[Message]:
        if self.inbox is None:
            self.inbox_send, self.inbox = trio.open_memory_channel[Message](INBOX_SIZE)
        return self.inbox

    def _start_pump(self) -> None:
        self._open_inbox()
        self.pump_running = True
        self.start_companion().start_service(self._pump)

    async def _pump(self) -> None:
        receive = self.websocket._receive
        inbox_send = self.inbox_send
        assert inbox_send is not None
        try:
            while True:
                self.pump_reading = True
                message = await receive()
                if not self._passes(message):
                    await self._stop(message)
                    return  # _peer_gone has closed the inbox and cancelled what it should
                self.pump_reading = False
                self.pending += 1
                handler_waits = self.handler_receiving
                try:
                    inbox_send.send_nowait(message)
                except trio.WouldBlock:
                    await inbox_send.send(message)  # backpressure: stop reading
                if handler_waits and not self.other_receivers:
                    return  # the handler is back: it reads for itself again
        finally:
            self.pump_running = self.pump_reading = False

    def _passes(self, message: Message) -> bool:
        """Whether ``message`` goes on as it is: data within the limit, or the connect."""
        kind: str = message["type"]
        if kind == "websocket.receive":
            limit = self.limit
            return limit is None or not _too_big(message, limit)
        return kind == "websocket.connect"

    async def _stop(self, message: Message) -> Message:
        """End the session for a disconnect, or a message over the limit; the disconnect."""
        if message["type"] == "websocket.disconnect":
            # After the app's own close this is only the peer's answer: nothing to cancel.
            closed_first = self.websocket.application_state is WebSocketState.DISCONNECTED
            self._peer_gone(message, cancel=not closed_first)
            return message
        await self.websocket.close(WS_1009_MESSAGE_TOO_BIG, "Message too big")
        message = {"type": "websocket.disconnect", "code": WS_1009_MESSAGE_TOO_BIG}
        self._peer_gone(message, cancel=True)
        return message

    def _peer_gone(self, message: Message, *, cancel: bool) -> None:
        """Receivers get the disconnect; with ``cancel``, everything else is cancelled."""
        self.websocket._disconnect = message
        if self.inbox_send is not None:
            self.inbox_send.close()  # receivers drain what is buffered, then the disconnect
        if not cancel:
            return
        if self.companion is not None:
            self.companion.cancel()
        if self.handler_receiving:
            # The handler is waiting for this news: it may clean up, for a while (``tick``).
            self.told_of_disconnect = True
        else:
            self.handler_scope.cancel()


class _Watchdog:
    """Ticks every ``WATCH_DELAY`` seconds while sessions run, so busy handlers get a pump.

    One per trio run, as a system task: it only looks at flags and starts pumps, so it
    cannot fail, and it ends at the first tick with no session.
    """

    def __init__(self) -> None:
        self.sessions: set[_Session] = set()
        self.running = False

    def add(self, session: _Session) -> None:
        self.sessions.add(session)
        if not self.running:
            self.running = True
            trio.lowlevel.spawn_system_task(self._run, name="toolkit WebSocket watchdog")

    async def _run(self) -> None:
        try:
            while True:
                await trio.sleep(WATCH_DELAY)
                if not self.sessions:
                    return  # lingering a tick spares short sessions a spawn each
                now = trio.current_time()
                for session in list(self.sessions):
                    grace = _setting(session.websocket, "websocket_disconnect_grace")
                    session.tick(now, grace)
        finally:
            self.running = False


_WATCHDOG: trio.lowlevel.RunVar[_Watchdog] = trio.lowlevel.RunVar("toolkit_websocket_watchdog")


def _watchdog() -> _Watchdog:
    """This trio run's watchdog."""
    try:
        return _WATCHDOG.get()
    except LookupError:
        watchdog = _Watchdog()
        _WATCHDOG.set(watchdog)
        return watchdog


def _session_error(
    handler_error: BaseException | None, child_error: BaseException | None
) -> BaseException | None:
    """What the session raises: the handler's error, a child's, or both in a group."""
    if handler_error is None or child_error is None:
        return handler_error or child_error
    return BaseExceptionGroup("WebSocket session failed", [handler_error, child_error])


_DEFAULTS: dict[str, Any] = {
    "websocket_max_message_size": DEFAULT_MAX_MESSAGE_SIZE,
    "websocket_disconnect_grace": DEFAULT_DISCONNECT_GRACE,
}


def _setting(websocket: WebSocket, name: str) -> Any:
    """The app's setting ``name`` (its default for an app that is not a toolkit ``App``)."""
    return getattr(websocket.scope.get("app"), name, _DEFAULTS[name])


def _too_big(message: Message, limit: int) -> bool:
    text: str | None = message.get("text")
    if text is not None:
        # UTF-8 takes 1 to 4 bytes a character; count exactly only when that could matter.
        size = len(text)
        if size * 4 <= limit:
            return False
        return size > limit or (not text.isascii() and len(text.encode("utf-8")) > limit)
    data: bytes | None = message.get("bytes")
    return data is not None and len(data) > limit


def decode_json(message: Message) -> Any:
    """A ``websocket.receive`` message's text or UTF-8 bytes as JSON; else ``MalformedMessage``."""
    text = message.get("text")
    try:
        if text is None:
            text = message["bytes"].decode("utf-8")
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MalformedMessage("Malformed JSON") from error


class WebSocketClose:
    """An ASGI app that closes the connection: refuses it before ``accept``."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.close", "code": self.code, "reason": self.reason})
