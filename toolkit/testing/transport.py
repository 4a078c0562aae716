"""An httpx transport that serves each request by running an ASGI app as a task in the caller's run.

It mirrors hypercorn's trio worker rather than a function call: the app runs in a nursery owned by
the transport (open it with ``async with``), the request body arrives in chunks, the response body
streams as the app sends it, and ``http.disconnect`` arrives when the client goes away or the
response is done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, suppress
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote

import httpx
import trio

from toolkit.types import ASGIApp, Message, Scope

_BODYLESS_STATUSES = frozenset({204, 304})
_ERROR_HEADERS = [(b"content-length", b"0"), (b"connection", b"close")]  # hypercorn's 500


def unwrap_exception_group(error: BaseException) -> BaseException:
    """Peel off exception groups that hold a single exception, so callers see the error itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


async def exit_nursery(
    manager: AbstractAsyncContextManager[trio.Nursery], error: BaseException | None
) -> None:
    """Exit a nursery entered by hand, from an ``__aexit__`` that got ``error`` (None if none).

    A new failure comes out without the one-exception group trio wraps it in; ``error`` itself is
    left for the caller's ``async with`` to propagate. Never cancel such a nursery's own scope by
    hand: the error it would swallow could not be swallowed here.
    """
    try:
        await manager.__aexit__(
            type(error) if error else None, error, error.__traceback__ if error else None
        )
        return
    except BaseException as raised:
        failure = unwrap_exception_group(raised)
    if failure is not error:
        raise failure


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
            message = {
                "type": kind,
                "status": int(message["status"]),
                "headers": [(bytes(k), bytes(v)) for k, v in message.get("headers", ())],
            }
        elif kind == "http.response.body" and self.app_state == "response":
            more_body = bool(message.get("more_body", False))
            if not more_body:
                self.app_state = "complete"
            message = {
                "type": kind,
                "body": bytes(message.get("body", b"")),
                "more_body": more_body,
            }
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
        self._nursery_manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._nursery: trio.Nursery | None = None
        self._running: set[_Exchange] = set()
        self._orphan_errors: list[Exception] = []

    async def __aenter__(self) -> Self:
        if self._nursery_manager is not None:
            raise RuntimeError("ASGITransport is already open")
        manager = trio.open_nursery()
        self._nursery = await manager.__aenter__()
        self._nursery_manager = manager
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        manager, self._nursery_manager = self._nursery_manager, None
        assert manager is not None, "ASGITransport was not opened"
        for exchange in list(self._running):
            if exchange.app_state != "request" and not exchange.closed.is_set():
                exchange.leave(finished_reading=False)  # a response never closed: its client left
        try:
            await exit_nursery(manager, exc_value)
        finally:
            self._nursery = None
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

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Start the app on ``request``; return once it has started the response."""
        if self._nursery is None:
            raise RuntimeError("Open the client first: `async with AsyncTestClient(app) as client`")
        exchange = _Exchange(self, request)
        self._running.add(exchange)
        self._nursery.start_soon(self._run_app, exchange)
        try:
            start = await exchange.next_from_app()
        except BaseException:
            exchange.leave(finished_reading=False)
            raise
        if start is None:
            error = exchange.take_error()
            if self.raise_app_exceptions:
                raise error
            return httpx.Response(
                500, headers=[(b"content-length", b"0"), (b"connection", b"close")]
            )
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
            leaf = unwrap_exception_group(raised)
            error = leaf if isinstance(leaf, Exception) else raised
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
