"""WebSocket sessions: Starlette's ``WebSocket`` API, each session run as a scoped trio task.

A routed session (``WebSocketRoute``, ``websocket_session``, ``WebSocketEndpoint``) runs inside
``run_session``, which gives it this task tree::

    server task for the connection
    └─ run_session
       └─ session nursery ............ websocket.nursery
          ├─ receive pump ............ the only caller of the server's receive
          ├─ children ................ started with websocket.nursery.start_soon(...)
          └─ handler(websocket) ...... the nursery's body, in its own cancel scope

- The pump passes messages on through a small buffer and enforces the app's
  ``websocket_max_message_size`` (close 1009).
- When the peer disconnects, the children are cancelled at once. The handler
  is cancelled too, unless it is waiting for a message: then it gets the
  disconnect (``WebSocketDisconnect``, as in Starlette) and has
  ``websocket_disconnect_grace`` seconds to clean up before it is cancelled.
  (The peer's answer to the app's own close cancels nothing.)
- When the handler returns, the children are cancelled and the socket is closed.
- An exception in the handler or a child cancels the rest and propagates
  (unwrapped from its exception group) to the exceptions layer, then to the
  server, which closes with 1011 and logs it once. ``WebSocketDisconnect``
  escaping the handler is the peer leaving, not an error.

Sends are serialised by a lock, so child tasks may send at once. After the
peer has gone a send raises ``WebSocketDisconnect``; after the app closed the
socket it raises ``WebSocketDisconnected``. ``close()`` is idempotent.
"""

from __future__ import annotations

import enum
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import trio

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
        "_handler_receiving",
        "_handler_scope",
        "_handler_task",
        "_inbox",
        "_nursery",
        "_receive",
        "_send",
        "_send_lock",
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
        self._send_lock = trio.Lock()
        # The peer's disconnect message, once known to the app or the pump.
        self._disconnect: Message | None = None
        # Set while a session runs.
        self._inbox: trio.MemoryReceiveChannel[Message] | None = None
        self._nursery: trio.Nursery | None = None
        self._handler_task: trio.lowlevel.Task | None = None
        self._handler_scope: trio.CancelScope | None = None
        self._handler_receiving = False

    @property
    def nursery(self) -> trio.Nursery:
        """The session's nursery: tasks started here are cancelled when the session ends."""
        if self._nursery is None:
            raise RuntimeError(
                "websocket.nursery exists only while a session runs "
                "(a WebSocketRoute, websocket_session or WebSocketEndpoint)"
            )
        return self._nursery

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
        message = await (self._receive() if self._inbox is None else self._next_from_pump())
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

    async def _next_from_pump(self) -> Message:
        assert self._inbox is not None
        in_handler = trio.lowlevel.current_task() is self._handler_task
        if in_handler:
            self._handler_receiving = True
        try:
            return await self._inbox.receive()
        except trio.EndOfChannel:  # the pump has stopped: the peer is gone
            assert self._disconnect is not None
            return self._disconnect
        finally:
            if in_handler:
                self._handler_receiving = False

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

    async def send(self, message: Message) -> None:
        """Send an ASGI message, one task at a time; raises if the state forbids it."""
        await self._transmit(message, quiet_close=False)

    async def _transmit(self, message: Message, *, quiet_close: bool) -> None:
        lock = self._send_lock
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            await lock.acquire()
        try:
            if self._advance(message, quiet_close):
                await self._send(message)
        finally:
            lock.release()

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
        await self._transmit(message, quiet_close=True)

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

    # -- the session's receive pump

    async def _pump(self, inbox: trio.MemorySendChannel[Message], limit: int | None) -> None:
        receive = self._receive
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                # After the app's own close this is only the peer's answer: nothing to cancel.
                closed_first = self.application_state is WebSocketState.DISCONNECTED
                self._peer_gone(message, inbox, cancel=not closed_first)
                return
            if kind == "websocket.receive" and limit is not None and _too_big(message, limit):
                await self.close(WS_1009_MESSAGE_TOO_BIG, "Message too big")
                closed = {"type": "websocket.disconnect", "code": WS_1009_MESSAGE_TOO_BIG}
                self._peer_gone(closed, inbox, cancel=True)
                return
            try:
                inbox.send_nowait(message)
            except trio.WouldBlock:
                await inbox.send(message)

    def _peer_gone(
        self, message: Message, inbox: trio.MemorySendChannel[Message], *, cancel: bool
    ) -> None:
        """Receivers get the disconnect; with ``cancel``, everything else is cancelled."""
        self._disconnect = message
        inbox.close()  # receivers drain what is buffered, then see the disconnect
        if not cancel:
            return
        handler_scope = self._handler_scope
        if self._handler_receiving and handler_scope is not None:
            # The handler is waiting for this news: let it clean up, for a while.
            app = self.scope.get("app")
            grace = getattr(app, "websocket_disconnect_grace", DEFAULT_DISCONNECT_GRACE)
            handler_scope.shield = True
            if grace is not None:
                handler_scope.deadline = trio.current_time() + grace
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()


async def run_session(
    websocket: WebSocket, handler: Callable[[WebSocket], Awaitable[None]]
) -> None:
    """Run ``handler(websocket)`` as a session: with its nursery, receive pump and clean end.

    See the module docstring for what a disconnect, a return and an error do.
    """
    scope = websocket.scope
    app = scope.get("app")
    limit = getattr(app, "websocket_max_message_size", DEFAULT_MAX_MESSAGE_SIZE)
    inbox_send, websocket._inbox = trio.open_memory_channel[Message](INBOX_SIZE)
    websocket._handler_task = trio.lowlevel.current_task()
    websocket._handler_scope = handler_scope = trio.CancelScope()
    scope[SESSION_KEY] = websocket
    error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            websocket._nursery = nursery
            nursery.start_soon(websocket._pump, inbox_send, limit)
            with handler_scope:
                await handler(websocket)
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        error = _session_error(group)
    finally:
        websocket._nursery = None
        websocket._handler_task = None
        websocket._handler_scope = None
    if error is not None:
        raise error
    await websocket.close()


def _session_error(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """What a session's nursery raised, less the peer leaving; a lone error comes unwrapped."""
    rest: BaseException | None = group.split(WebSocketDisconnect)[1]
    while isinstance(rest, BaseExceptionGroup) and len(rest.exceptions) == 1:
        rest = rest.exceptions[0]
    return rest


def _too_big(message: Message, limit: int) -> bool:
    data: bytes | None = message.get("bytes")
    if data is not None:
        return len(data) > limit
    text: str = message.get("text") or ""
    if len(text) > limit:
        return True
    # UTF-8 takes up to 4 bytes a character; count exactly only when that could matter.
    return len(text) * 4 > limit and not text.isascii() and len(text.encode("utf-8")) > limit


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
