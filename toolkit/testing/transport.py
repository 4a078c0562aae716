"""An httpx transport that serves each request by running an ASGI app as a task in the caller's run.

It mirrors hypercorn's trio worker rather than a function call: the app runs in a nursery owned by
the transport (open it with ``async with``), the request body arrives in chunks, the response body
streams as the app sends it, and ``http.disconnect`` arrives when the client goes away or the
response is done. WebSocket sessions run the same way (``websocket_connect``), with the scope and
message rules of hypercorn's WebSocket stream.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, suppress
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import unquote

import httpx
import trio

from toolkit.types import ASGIApp, Message, Scope
from toolkit.websockets import WebSocketDisconnect

_BODYLESS_STATUSES = frozenset({204, 304})
_ERROR_HEADERS = [(b"content-length", b"0"), (b"connection", b"close")]  # hypercorn's 500


def unwrap_exception_group(error: BaseException) -> BaseException:
    """Peel off exception groups that hold a single exception, so callers see the error itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _app_error(raised: Exception) -> Exception:
    """The error an app task raised, without the one-exception groups trio wrapped it in."""
    leaf = unwrap_exception_group(raised)
    return leaf if isinstance(leaf, Exception) else raised


class HeldNursery:
    """A nursery opened in one method and closed in another: an ``__aenter__``/``__aexit__`` pair.

    ``close`` gets the error the owner's block raised (None if none). A new failure comes out
    without the one-exception group trio wraps it in; that error itself is left for the owner's
    ``async with`` to propagate. Never cancel such a nursery's own scope by hand: the error it
    would swallow could not be swallowed here.
    """

    def __init__(self) -> None:
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        #: The nursery from ``open`` until ``close`` returns: its tasks may start more meanwhile.
        self.nursery: trio.Nursery | None = None

    @property
    def is_open(self) -> bool:
        """Whether the nursery has been opened and ``close`` not called yet."""
        return self._manager is not None

    async def open(self) -> trio.Nursery:
        """Open the nursery and return it."""
        manager = trio.open_nursery()
        self.nursery = await manager.__aenter__()
        self._manager = manager
        return self.nursery

    async def close(self, error: BaseException | None) -> None:
        """Wait for the nursery's tasks and close it, handing it the owner's ``error``."""
        manager, self._manager = self._manager, None
        assert manager is not None, "the nursery is not open"
        try:
            await manager.__aexit__(
                type(error) if error else None, error, error.__traceback__ if error else None
            )
            return
        except BaseException as raised:
            failure = unwrap_exception_group(raised)
        finally:
            self.nursery = None
        if failure is not error:
            raise failure


def _response_start(message: Message) -> Message:
    """A ``*.response.start`` message as a server reads it: an int status, bytes header pairs."""
    return {
        "type": message["type"],
        "status": int(message["status"]),
        "headers": [(bytes(k), bytes(v)) for k, v in message.get("headers", ())],
    }


def _response_body(message: Message) -> Message:
    """A ``*.response.body`` message as a server reads it: bytes body, a bool ``more_body``."""
    return {
        "type": message["type"],
        "body": bytes(message.get("body", b"")),
        "more_body": bool(message.get("more_body", False)),
    }


class _RequestBody:
    """Turns an httpx request stream into ``http.request`` messages, one per chunk.

    One chunk is read ahead so the last chunk carries ``more_body=False``; an empty body is one
    message with ``body=b""``.
    """

    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> None:
        self._async_chunks: AsyncIterator[bytes] | None = None
        self._sync_chunks: Iterator[bytes] | None = None
        if isinstance(stream, httpx.AsyncByteStream):
            self._async_chunks = aiter(stream)
        else:
            self._sync_chunks = iter(stream)
        self._ahead: bytes | None = None
        self.exhausted = False

    async def _next_chunk(self) -> bytes | None:
        while True:
            if self._async_chunks is not None:
                chunk = await anext(self._async_chunks, None)
            else:
                assert self._sync_chunks is not None
                chunk = next(self._sync_chunks, None)
            if chunk is None or chunk:
                return chunk

    async def next_message(self) -> Message | None:
        """The next ``http.request`` message, or None once the whole body has been delivered."""
        if self.exhausted:
            return None
        chunk = self._ahead if self._ahead is not None else await self._next_chunk()
        self._ahead = None if chunk is None else await self._next_chunk()
        self.exhausted = self._ahead is None
        return {"type": "http.request", "body": chunk or b"", "more_body": not self.exhausted}


class _Exchange:
    """One request/response between the client and an app task, seen from both sides.

    App side: ``receive``/``send``. Client side: ``next_from_app`` and ``leave``. Messages cross
    an unbuffered memory channel, so the app's ``send`` returns once the client has taken the
    message, as a socket write returns once the peer has room.
    """

    def __init__(self, transport: ASGITransport, request: httpx.Request) -> None:
        self.transport = transport
        self.scope = transport.build_scope(request)
        self.body = _RequestBody(request.stream)
        self.to_client, self.from_app = trio.open_memory_channel[Message](0)
        self.cancel_scope = trio.CancelScope()
        self.finished = trio.Event()
        # Set once the response is over for the client: fully delivered, or abandoned.
        self.closed = trio.Event()
        self.client_left = False
        self.app_state = "request"  # then "response", then "complete"
        self.disconnect_delivered = False
        # An app error for the client to raise, and one no response could report.
        self.error: Exception | None = None
        self.orphan_error: Exception | None = None

    async def receive(self) -> Message:
        """The app's ``receive``: body chunks, then ``http.disconnect`` once, then it blocks."""
        if not self.closed.is_set():
            message = await self.body.next_message()
            if message is not None:
                await trio.lowlevel.checkpoint()  # the body may be in memory already
                return message
            await self.closed.wait()
        if self.disconnect_delivered:
            await trio.sleep_forever()  # like hypercorn: the disconnect is delivered exactly once
        self.disconnect_delivered = True
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        """The app's ``send``: checks the message order, then hands the message to the client."""
        kind = message["type"]
        if kind == "http.response.start" and self.app_state == "request":
            self.app_state = "response"
            message = _response_start(message)
        elif kind == "http.response.body" and self.app_state == "response":
            if not message.get("more_body", False):
                self.app_state = "complete"
            message = _response_body(message)
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} in state {self.app_state!r}")
        if self.client_left:
            await trio.lowlevel.checkpoint()  # dropped, as a server does, but still a checkpoint
        else:
            # If the client leaves while the message waits, drop it too.
            with suppress(trio.BrokenResourceError):
                await self.to_client.send(message)
        if self.app_state == "complete":
            self.closed.set()

    def app_finished(self, error: Exception | None, *, interrupted: bool = False) -> None:
        """Record how the app task ended; route its error to the client or to the transport."""
        if not self.closed.is_set():
            if error is None:
                error = RuntimeError(self._early_end_reason(interrupted))
            self.error = error  # the client, still waiting on the channel, raises it
        elif error is not None:
            self.orphan_error = error
            self.transport.report_orphan(error)
        self.to_client.close()
        self.finished.set()

    def _early_end_reason(self, interrupted: bool) -> str:
        if interrupted:
            return "ASGI app task was cancelled before the response ended"
        if self.app_state == "request":
            return "ASGI app returned without starting a response"
        return "ASGI app returned without completing the response body"

    async def next_from_app(self) -> Message | None:
        """The next message the app sent, or None when the app task has returned."""
        try:
            return await self.from_app.receive()
        except trio.EndOfChannel:
            return None

    def take_error(self) -> Exception:
        """The app's error after ``next_from_app`` returned None; it now belongs to the caller."""
        error, self.error = self.error, None
        assert error is not None
        return error

    def leave(self, *, finished_reading: bool) -> None:
        """The client is done with the response; unless it read it all, that is a disconnect."""
        if self.closed.is_set() and self.client_left:
            return
        if not finished_reading:
            self.client_left = True
        self.closed.set()
        self.from_app.close()
        if self.error is not None:
            self.orphan_error = self.take_error()
            self.transport.report_orphan(self.orphan_error)


class ASGIResponseStream(httpx.AsyncByteStream):
    """A response body read from the app as it sends it; closing it early disconnects the client."""

    def __init__(self, exchange: _Exchange, status_code: int) -> None:
        self._exchange = exchange
        self._suppress_body = (
            exchange.scope["method"] == "HEAD"
            or status_code < 200
            or status_code in _BODYLESS_STATUSES
        )
        self.complete = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        exchange = self._exchange
        while not self.complete and not exchange.client_left:
            message = await exchange.next_from_app()
            if message is None:
                self.complete = True  # nothing more will come; report why
                error = exchange.take_error()
                if exchange.transport.raise_app_exceptions:
                    raise error
                raise httpx.RemoteProtocolError("Server closed the response before its end")
            self.complete = not message["more_body"]
            if message["body"] and not self._suppress_body:
                return bytes(message["body"])
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Leave the response; if it was not read to its end, the app sees ``http.disconnect``."""
        self._exchange.leave(finished_reading=self.complete)

    async def finish_app(self) -> None:
        """Wait for the app task behind this response, cancelling it if the body was cut short.

        Raises the error the task left unreported, if any. The synchronous TestClient uses this to
        return only once the app (and its background work) is done, as Starlette's does.
        """
        exchange = self._exchange
        if not self.complete:
            exchange.cancel_scope.cancel()
        await exchange.finished.wait()
        error, exchange.orphan_error = exchange.orphan_error, None
        if error is not None and exchange.transport.claim_orphan(error):
            raise error


class ASGITransport(httpx.AsyncBaseTransport):
    """Serve httpx requests from an ASGI app running as trio tasks, the way hypercorn's worker does.

    Use it inside ``async with``: that opens the nursery the app's request tasks run in. A request
    returns as soon as the response has started; the body streams after. A task still running
    after its response (background work) does not hold the response back; ``wait_idle()`` joins
    such tasks, and leaving ``async with`` waits for them, as a server drains at shutdown (if the
    block raised, they are cancelled instead; a response still open is a client that left).

    Disconnects, as hypercorn: once the body is read, ``receive()`` waits for the response to end
    or the client to leave (closing a stream early, or cancelling the request), then returns
    ``http.disconnect``, exactly once; a further ``receive()`` blocks. After a disconnect,
    ``send()`` drops messages without error.

    App errors: with ``raise_app_exceptions`` (the default) an error before the response starts is
    raised by the request, an error mid-body by the body read, and an error after the response
    (or after the client left) by the next ``wait_idle()`` or by leaving ``async with``. Without
    it, the client sees what a real one would: a 500, or a body cut short.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        raise_app_exceptions: bool = True,
        root_path: str = "",
        client: tuple[str, int] = ("testclient", 50000),
        state: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.raise_app_exceptions = raise_app_exceptions
        self.root_path = root_path
        self.client = client
        self.state: dict[str, Any] = {} if state is None else state
        self._task_nursery = HeldNursery()
        self._running: set[_Exchange] = set()
        self._orphan_errors: list[Exception] = []

    async def __aenter__(self) -> Self:
        if self._task_nursery.is_open:
            raise RuntimeError("ASGITransport is already open")
        await self._task_nursery.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        assert self._task_nursery.is_open, "ASGITransport was not opened"
        for exchange in list(self._running):
            if exchange.app_state != "request" and not exchange.closed.is_set():
                exchange.leave(finished_reading=False)  # a response never closed: its client left
        await self._task_nursery.close(exc_value)
        if exc_value is None:
            self._raise_orphans()

    def build_scope(self, request: httpx.Request) -> Scope:
        """The HTTP connection scope hypercorn would build for ``request`` over HTTP/1.1."""
        url = request.url
        raw_path = url.raw_path.partition(b"?")[0]
        port = url.port or (443 if url.scheme in ("https", "wss") else 80)
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.1"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": url.query,
            "root_path": self.root_path,
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "client": self.client,
            "server": (url.host, port),
            "extensions": {},
            "state": self.state.copy(),
        }

    def build_websocket_scope(self, request: httpx.Request) -> Scope:
        """The WebSocket scope hypercorn would build for a handshake ``request`` over HTTP/1.1."""
        scope = self.build_scope(request)
        del scope["method"]
        scope["type"] = "websocket"
        scope["asgi"] = {"version": "3.0", "spec_version": "2.3"}
        scope["scheme"] = "wss" if request.url.scheme in ("https", "wss") else "ws"
        offered = request.headers.get("sec-websocket-protocol", "")
        scope["subprotocols"] = [name.strip() for name in offered.split(",") if name.strip()]
        scope["extensions"] = {"websocket.http.response": {}}
        return scope

    def websocket_connect(self, request: httpx.Request) -> AsyncWebSocketSession:
        """A WebSocket session on the handshake ``request``; enter it to connect."""
        if self._task_nursery.nursery is None:
            raise RuntimeError("Open the client first: `async with AsyncTestClient(app) as client`")
        return AsyncWebSocketSession(self, request)

    def start_websocket(self, exchange: _WebSocketExchange) -> None:
        """Run the app on a WebSocket exchange, in the transport's nursery."""
        nursery = self._task_nursery.nursery
        assert nursery is not None
        nursery.start_soon(self._run_websocket_app, exchange)

    async def _run_websocket_app(self, exchange: _WebSocketExchange) -> None:
        error: Exception | None = None
        try:
            with exchange.cancel_scope:
                await self.app(exchange.scope, exchange.receive, exchange.send)
        except Exception as raised:
            error = _app_error(raised)
        finally:
            exchange.app_finished(error)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Start the app on ``request``; return once it has started the response."""
        nursery = self._task_nursery.nursery
        if nursery is None:
            raise RuntimeError("Open the client first: `async with AsyncTestClient(app) as client`")
        exchange = _Exchange(self, request)
        self._running.add(exchange)
        nursery.start_soon(self._run_app, exchange)
        try:
            start = await exchange.next_from_app()
        except BaseException:
            exchange.leave(finished_reading=False)
            raise
        if start is None:
            error = exchange.take_error()
            if self.raise_app_exceptions:
                raise error
            return httpx.Response(500, headers=_ERROR_HEADERS)
        status_code: int = start["status"]
        stream = ASGIResponseStream(exchange, status_code)
        return httpx.Response(status_code, headers=start["headers"], stream=stream)

    async def _run_app(self, exchange: _Exchange) -> None:
        error: Exception | None = None
        interrupted = False
        try:
            with exchange.cancel_scope:
                await self.app(exchange.scope, exchange.receive, exchange.send)
        except Exception as raised:
            error = _app_error(raised)
        except BaseException:
            interrupted = True
            raise
        finally:
            self._running.discard(exchange)
            exchange.app_finished(error, interrupted=interrupted)

    async def wait_idle(self) -> None:
        """Wait until every request task has returned; raise app errors no response reported."""
        while self._running:
            await next(iter(self._running)).finished.wait()
        self._raise_orphans()

    def report_orphan(self, error: Exception) -> None:
        """Keep an app error that no response can carry, to raise it from ``wait_idle``/exit."""
        if self.raise_app_exceptions:
            self._orphan_errors.append(error)

    def claim_orphan(self, error: Exception) -> bool:
        """Take back an orphaned error to raise it elsewhere; False if it was already raised."""
        try:
            self._orphan_errors.remove(error)
        except ValueError:
            return False
        return True

    def _raise_orphans(self) -> None:
        errors, self._orphan_errors = self._orphan_errors, []
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup("ASGI app errors after their responses", errors)


# -- WebSockets

#: Seconds an app gets to finish once the test client has closed its WebSocket, before it is
#: cancelled (a server would leave it running; a test must end).
WEBSOCKET_CLOSE_TIMEOUT = 5.0


class WebSocketDenialResponse(httpx.Response, WebSocketDisconnect):  # type: ignore[misc]
    """The app refused the WebSocket handshake with an HTTP response (``send_denial_response``).

    An ``httpx.Response`` (``status_code``, ``headers``, ``content``...) and a
    ``WebSocketDisconnect`` with code 1006, as a browser reports a failed handshake.
    """

    def __init__(
        self,
        status_code: int,
        headers: list[tuple[bytes, bytes]],
        content: bytes,
        request: httpx.Request,
    ) -> None:
        httpx.Response.__init__(
            self, status_code, headers=headers, content=content, request=request
        )
        WebSocketDisconnect.__init__(self, 1006, f"{status_code} {self.reason_phrase}")


class _WebSocketExchange:
    """One WebSocket session between the test client and an app task, seen from both sides.

    App side: ``receive``/``send``, which behave as hypercorn's do (see the session class).
    Client side: ``to_app`` and ``from_app``, unbounded as in Starlette's test client.
    """

    def __init__(self, transport: ASGITransport, request: httpx.Request) -> None:
        self.transport = transport
        self.request = request
        self.scope = transport.build_websocket_scope(request)
        self.to_app, self._app_inbox = trio.open_memory_channel[Message](math.inf)
        self._app_outbox, self.from_app = trio.open_memory_channel[Message](math.inf)
        self.cancel_scope = trio.CancelScope()
        self.finished = trio.Event()
        self.state = "handshake"  # then "connected" or "response", then "closed"
        self.client_left = False
        self.error: Exception | None = None

    async def receive(self) -> Message:
        """The app's ``receive``: connect, the client's messages, one disconnect, then it blocks."""
        return await self._app_inbox.receive()

    async def send(self, message: Message) -> None:
        """The app's ``send``: hypercorn's rules; after the client left, messages are dropped."""
        kind, state = message["type"], self.state
        if self.client_left or (state == "closed" and kind in _LATE_MESSAGES):
            await trio.lowlevel.checkpoint()
            return
        if kind == "websocket.send" and state == "connected":
            message = _data_message(message)
        elif kind == "websocket.accept" and state == "handshake":
            message = self._accept(message)
        elif kind == "websocket.close" and state in ("handshake", "connected"):
            self.state = "closed"
            message = {
                "type": kind,
                "code": int(message.get("code", 1000)),
                "reason": message.get("reason") or "",
            }
        elif kind == "websocket.http.response.start" and state == "handshake":
            self.state = "response"
            message = _response_start(message)
        elif kind == "websocket.http.response.body" and state == "response":
            if not message.get("more_body", False):
                self.state = "closed"
            message = _response_body(message)
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} in WebSocket state {state!r}")
        await self._app_outbox.send(message)
        if self.state == "closed":
            # The client answers the close (or the refused handshake ends): as hypercorn, 1000.
            self.disconnect_app({"type": "websocket.disconnect", "code": 1000})

    def _accept(self, message: Message) -> Message:
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self.scope["subprotocols"]:
            raise RuntimeError(f"Invalid subprotocol {subprotocol!r}: the client did not offer it")
        headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers") or ()]
        for name, _ in headers:
            if name == b"sec-websocket-protocol" or name.startswith(b":"):
                raise RuntimeError(f"Invalid accept header {name!r}: use the subprotocol argument")
        self.state = "connected"
        return {"type": "websocket.accept", "subprotocol": subprotocol, "headers": headers}

    def disconnect_app(self, message: Message) -> None:
        """Give the app its one ``websocket.disconnect``; later messages from it are dropped."""
        if not self.client_left:
            self.client_left = True
            self.to_app.send_nowait(message)

    def app_finished(self, error: Exception | None) -> None:
        """How the app ended, as the client sees it: hypercorn's 500 or 1011 if it was too soon."""
        raising = error is not None and self.transport.raise_app_exceptions
        if raising:
            self.error = error
        elif self.state == "handshake":
            self._app_outbox.send_nowait(
                {"type": "websocket.http.response.start", "status": 500, "headers": _ERROR_HEADERS}
            )
            self._app_outbox.send_nowait(
                {"type": "websocket.http.response.body", "body": b"", "more_body": False}
            )
        elif self.state == "connected" and not self.client_left:
            self._app_outbox.send_nowait({"type": "websocket.close", "code": 1011, "reason": ""})
        self.state = "closed"
        self._app_outbox.close()
        self.finished.set()

    def take_error(self) -> Exception | None:
        error, self.error = self.error, None
        return error


_LATE_MESSAGES = frozenset({"websocket.send", "websocket.close"})


def _data_message(message: Message) -> Message:
    data, text = message.get("bytes"), message.get("text")
    if data is not None and text is None:
        return {"type": "websocket.send", "bytes": bytes(data)}
    if text is not None and data is None and isinstance(text, str):
        return {"type": "websocket.send", "text": text}
    raise TypeError("websocket.send needs exactly one of 'bytes' (bytes) or 'text' (str)")


class AsyncWebSocketSession:
    """The test's end of a WebSocket: what ``AsyncTestClient.websocket_connect`` yields.

    Entering runs the app and waits for the handshake: an accept opens the session, a close
    raises ``WebSocketDisconnect`` (code and reason), an HTTP response raises
    ``WebSocketDenialResponse``. ``receive_*`` raise ``WebSocketDisconnect`` once the app has
    closed. Leaving closes with 1000 if still open, then waits for the app task to finish
    (cancelling it after ``WEBSOCKET_CLOSE_TIMEOUT`` seconds) and raises its error, if any.

    The app sees what hypercorn gives it, with one difference: ``close(code, reason)`` reaches
    the app with its code and reason, where hypercorn reports 1006.
    """

    def __init__(self, transport: ASGITransport, request: httpx.Request) -> None:
        self._transport = transport
        self._exchange = _WebSocketExchange(transport, request)
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] = []
        self._close: Message | None = None  # the app's close, once received
        self._closed_by_client = False

    async def __aenter__(self) -> Self:
        exchange = self._exchange
        self._transport.start_websocket(exchange)
        try:
            await exchange.to_app.send({"type": "websocket.connect"})
            message = await self.receive()
        except BaseException:
            await self._finish(cancel=True)
            raise
        if message["type"] != "websocket.accept":
            refusal = await self._refusal(message)
            await self._finish(cancel=False)
            raise refusal
        self.accepted_subprotocol = message["subprotocol"]
        self.extra_headers = message["headers"]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.close()
        await self._finish(cancel=exc_value is not None)

    async def _finish(self, *, cancel: bool) -> None:
        """Wait for the app task (cancel it if asked or if it overstays); raise its error."""
        exchange = self._exchange
        exchange.disconnect_app({"type": "websocket.disconnect", "code": 1006})
        if cancel:
            exchange.cancel_scope.cancel()
        with trio.move_on_after(WEBSOCKET_CLOSE_TIMEOUT) as waiting:
            await exchange.finished.wait()
        if waiting.cancelled_caught:
            exchange.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await exchange.finished.wait()
        error = exchange.take_error()
        if error is not None and not cancel:
            raise error

    async def _refusal(self, message: Message) -> WebSocketDisconnect:
        """The exception for a handshake the app refused with ``message``."""
        if message["type"] == "websocket.http.response.start":
            body = bytearray()
            while True:
                part = await self.receive()
                body += part["body"]
                if not part["more_body"]:
                    break
            return WebSocketDenialResponse(
                message["status"], message["headers"], bytes(body), self._exchange.request
            )
        return WebSocketDisconnect(message["code"], message["reason"])

    async def send(self, message: Message) -> None:
        """Send an ASGI message to the app as is (``websocket.receive`` or ``.disconnect``)."""
        exchange = self._exchange
        if self._closed_by_client:
            raise RuntimeError("This WebSocket session is closed")
        if message["type"] == "websocket.disconnect":
            self._closed_by_client = True
            exchange.disconnect_app(message)
        elif exchange.client_left:  # the app closed: the message is lost, as on a network
            await trio.lowlevel.checkpoint()
        else:
            await exchange.to_app.send(message)

    async def send_text(self, data: str) -> None:
        await self.send({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        await self.send({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            await self.send_text(text)
        else:
            await self.send_bytes(text.encode("utf-8"))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the connection from the client's side; the app sees this code and reason."""
        if not self._closed_by_client:
            await self.send({"type": "websocket.disconnect", "code": code, "reason": reason or ""})

    async def receive(self) -> Message:
        """The next message the app sent; after the app ended, its error or its close again."""
        if self._close is not None:
            return self._close
        try:
            message = await self._exchange.from_app.receive()
        except trio.EndOfChannel:
            error = self._exchange.take_error()
            if error is not None:
                raise error from None
            message = {"type": "websocket.close", "code": 1006, "reason": ""}
        if message["type"] == "websocket.close":
            self._close = message
        return message

    async def _receive_data(self) -> Message:
        message = await self.receive()
        if message["type"] == "websocket.close":
            raise WebSocketDisconnect(message["code"], message["reason"])
        return message

    async def receive_text(self) -> str:
        text: str | None = (await self._receive_data()).get("text")
        if text is None:
            raise TypeError("Expected a text message, got a binary one")
        return text

    async def receive_bytes(self) -> bytes:
        data: bytes | None = (await self._receive_data()).get("bytes")
        if data is None:
            raise TypeError("Expected a binary message, got a text one")
        return data

    async def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        if mode not in ("text", "binary"):
            raise RuntimeError('The "mode" argument should be "text" or "binary".')
        message = await self._receive_data()
        text = message["text"] if mode == "text" else message["bytes"].decode("utf-8")
        return json.loads(text)
