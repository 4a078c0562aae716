"""Test clients: ``AsyncTestClient`` runs the app in the test's own trio run; ``TestClient`` is the
synchronous drop-in for Starlette's, running the app under trio in a background thread.

Both speak WebSockets too: ``websocket_connect(path, subprotocols=None, headers=None)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    AsyncExitStack,
    ExitStack,
    asynccontextmanager,
    contextmanager,
)
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, TypeVarTuple

import httpx
import trio
from httpx._types import CookieTypes, HeaderTypes

from toolkit.testing.lifespan import LifespanManager
from toolkit.testing.portal import Portal, start_portal
from toolkit.testing.transport import (
    ASGIResponseStream,
    ASGITransport,
    AsyncWebSocketSession,
    WebSocketDenialResponse,
)
from toolkit.types import ASGIApp, Message

__all__ = [
    "AsyncTestClient",
    "AsyncWebSocketSession",
    "TestClient",
    "WebSocketDenialResponse",
    "WebSocketTestSession",
]

_Session = tuple[Portal, ASGITransport]
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _refuse_inside_trio() -> None:
    if trio.lowlevel.in_trio_run():
        raise RuntimeError("TestClient blocks its thread: in an async test, use AsyncTestClient")


def _with_user_agent(headers: HeaderTypes | None) -> httpx.Headers:
    merged = httpx.Headers(headers)
    merged.setdefault("user-agent", "testclient")
    return merged


def _handshake_request(
    client: httpx.Client | httpx.AsyncClient,
    url: str,
    subprotocols: Sequence[str] | None,
    headers: HeaderTypes | None,
) -> httpx.Request:
    """The handshake a browser would send for ``url``, with the client's headers and cookies."""
    handshake = httpx.Headers(headers)
    handshake.setdefault("connection", "upgrade")
    handshake.setdefault("upgrade", "websocket")
    handshake.setdefault("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    handshake.setdefault("sec-websocket-version", "13")
    if subprotocols:
        handshake["sec-websocket-protocol"] = ", ".join(subprotocols)
    return client.build_request("GET", url, headers=handshake)


class _StackContext:
    """A context manager built on an ``ExitStack``: ``_enter`` fills it, ``__exit__`` unwinds it.

    If ``_enter`` raises, what it had entered is unwound at once.
    """

    _exit_stack: ExitStack | None = None

    def _enter(self, stack: ExitStack) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        with ExitStack() as stack:
            self._enter(stack)
            self._exit_stack = stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        stack, self._exit_stack = self._exit_stack, None
        assert stack is not None, f"{type(self).__name__} was not entered"
        stack.__exit__(exc_type, exc_value, traceback)


class AsyncTestClient(httpx.AsyncClient):
    """An httpx ``AsyncClient`` that serves requests from ``app`` inside the test's own trio run.

    ``async with`` runs the app's lifespan startup (a failure raises) and opens the nursery the
    request tasks run in; leaving waits for those tasks, then runs the lifespan shutdown (skipped,
    and the app cancelled, if the block raised). ``client.stream(...)`` yields the body as the app
    sends it; closing the stream early is a client disconnect. A response returns while the app
    may still run background work: ``await client.wait_idle()`` joins it. See ``ASGITransport``.
    """

    __test__ = False

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        cookies: CookieTypes | None = None,
        headers: HeaderTypes | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
        lifespan: bool = True,
    ) -> None:
        self.app = app
        self.app_state: dict[str, Any] = {}
        self._asgi = ASGITransport(
            app,
            raise_app_exceptions=raise_server_exceptions,
            root_path=root_path,
            client=client,
            state=self.app_state,
        )
        self._lifespan = lifespan
        self._exit_stack: AsyncExitStack | None = None
        super().__init__(
            base_url=base_url,
            headers=_with_user_agent(headers),
            transport=self._asgi,
            follow_redirects=follow_redirects,
            cookies=cookies,
        )

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            if self._lifespan:
                await stack.enter_async_context(LifespanManager(self.app, self.app_state))
            await super().__aenter__()
            stack.push_async_exit(super().__aexit__)
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        stack, self._exit_stack = self._exit_stack, None
        assert stack is not None, "AsyncTestClient was not opened"
        await stack.__aexit__(exc_type, exc_value, traceback)

    async def wait_idle(self) -> None:
        """Wait for every request task (background work included); raise errors they left."""
        await self._asgi.wait_idle()

    def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        headers: HeaderTypes | None = None,
    ) -> AsyncWebSocketSession:
        """Open a WebSocket to the app: ``async with client.websocket_connect("/ws") as ws:``.

        See ``AsyncWebSocketSession`` for the handshake's outcomes and what leaving does.
        """
        return self._asgi.websocket_connect(_handshake_request(self, url, subprotocols, headers))


class TestClient(httpx.Client, _StackContext):
    """Starlette's synchronous ``TestClient``, running the app under trio in a background thread.

    ``with TestClient(app) as client:`` runs lifespan startup and shutdown and keeps one trio run
    (``client.portal``) alive for the whole block; without ``with``, each request gets a
    short-lived run and no lifespan. A request returns, and a streamed response closes, once the
    app task has finished, background work included (a stream closed early cancels the app).
    ``backend`` must be ``"trio"``; ``backend_options`` are passed to ``trio.run``.
    """

    __test__ = False

    def __init__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        backend: Literal["trio"] = "trio",
        backend_options: dict[str, Any] | None = None,
        cookies: CookieTypes | None = None,
        headers: HeaderTypes | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
    ) -> None:
        if backend != "trio":
            raise ValueError(f"toolkit's TestClient runs apps under trio only, not {backend!r}")
        self.app = app
        self.app_state: dict[str, Any] = {}
        self.portal: Portal | None = None
        self._raise_server_exceptions = raise_server_exceptions
        self._root_path = root_path
        self._client = client
        self._run_options = dict(backend_options or {})
        self._session: _Session | None = None
        super().__init__(
            base_url=base_url,
            headers=_with_user_agent(headers),
            transport=_PortalTransport(self._open_session),
            follow_redirects=follow_redirects,
            cookies=cookies,
        )

    # httpx.Client's own enter and exit run inside these, from ``_enter``.
    __enter__ = _StackContext.__enter__
    __exit__ = _StackContext.__exit__

    def _enter(self, stack: ExitStack) -> None:
        _refuse_inside_trio()
        session = stack.enter_context(
            start_portal(lambda: self._serve(lifespan=True), **self._run_options)
        )
        stack.callback(self._forget_session)
        self._session = session
        self.portal = session[0]
        super().__enter__()
        stack.push(super().__exit__)

    def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        headers: HeaderTypes | None = None,
    ) -> WebSocketTestSession:
        """Open a WebSocket to the app: ``with client.websocket_connect("/ws") as ws:``.

        A refused handshake raises ``WebSocketDisconnect`` (a close) or ``WebSocketDenialResponse``
        (an HTTP response); see ``AsyncWebSocketSession``, whose methods these are.
        """
        request = _handshake_request(self, url, subprotocols, headers)
        return WebSocketTestSession(self._open_session, request)

    def _forget_session(self) -> None:
        self._session = None
        self.portal = None

    def _serve(self, *, lifespan: bool) -> AbstractAsyncContextManager[ASGITransport]:
        transport = ASGITransport(
            self.app,
            raise_app_exceptions=self._raise_server_exceptions,
            root_path=self._root_path,
            client=self._client,
            state=self.app_state,
        )
        return _serving(transport, lifespan=lifespan)

    @contextmanager
    def _open_session(self) -> Iterator[_Session]:
        _refuse_inside_trio()
        if self._session is not None:
            yield self._session
        else:
            with start_portal(lambda: self._serve(lifespan=False), **self._run_options) as session:
                yield session


@asynccontextmanager
async def _serving(transport: ASGITransport, *, lifespan: bool) -> AsyncIterator[ASGITransport]:
    """What a server holds open around requests: the app's lifespan, then the request nursery."""
    async with AsyncExitStack() as stack:
        if lifespan:
            await stack.enter_async_context(LifespanManager(transport.app, transport.state))
        await stack.enter_async_context(transport)
        yield transport


class _PortalTransport(httpx.BaseTransport):
    """The sync client's transport: each request goes through an ``ASGITransport`` in a portal."""

    def __init__(self, open_session: Callable[[], AbstractContextManager[_Session]]) -> None:
        self._open_session = open_session
        self._open_streams: set[_PortalResponseStream] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with ExitStack() as stack:
            portal, transport = stack.enter_context(self._open_session())
            response = portal.call(transport.handle_async_request, request)
            if not isinstance(response.stream, ASGIResponseStream):
                return response  # the bodiless 500 an app error became
            stream = _PortalResponseStream(
                portal, response.stream, stack.pop_all(), self._open_streams
            )
        return httpx.Response(response.status_code, headers=response.headers, stream=stream)

    def close(self) -> None:
        """Close responses still open, so the app tasks behind them end before the portal does."""
        for stream in list(self._open_streams):
            stream.close()


class _PortalResponseStream(httpx.SyncByteStream):
    """A response body pulled chunk by chunk through the portal; closing it finishes the app."""

    def __init__(
        self,
        portal: Portal,
        stream: ASGIResponseStream,
        session_exit: ExitStack,
        open_streams: set[_PortalResponseStream],
    ) -> None:
        self._portal = portal
        self._stream = stream
        self._session_exit = session_exit
        self._open_streams = open_streams
        open_streams.add(self)

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := self._portal.call(_next_chunk, self._stream)) is not None:
            yield chunk

    def close(self) -> None:
        if self not in self._open_streams:
            return
        self._open_streams.discard(self)
        with self._session_exit:
            self._portal.call(self._finish)

    async def _finish(self) -> None:
        await self._stream.aclose()
        await self._stream.finish_app()


async def _next_chunk(stream: ASGIResponseStream) -> bytes | None:
    return await anext(stream, None)


class WebSocketTestSession(_StackContext):
    """The sync client's end of a WebSocket: an ``AsyncWebSocketSession`` driven through the portal.

    Starlette's ``WebSocketTestSession``: use it as a context manager; the methods block.
    """

    __test__ = False

    def __init__(
        self, open_session: Callable[[], AbstractContextManager[_Session]], request: httpx.Request
    ) -> None:
        self._open_session = open_session
        self._request = request
        self._portal: Portal | None = None
        self._session: AsyncWebSocketSession | None = None

    def _enter(self, stack: ExitStack) -> None:
        portal, transport = stack.enter_context(self._open_session())
        session = transport.websocket_connect(self._request)
        portal.call(session.__aenter__)
        stack.push(lambda *exc_info: portal.call(session.__aexit__, *exc_info))
        self._portal, self._session = portal, session

    @property
    def _open(self) -> tuple[Portal, AsyncWebSocketSession]:
        if self._portal is None or self._session is None:
            raise RuntimeError(
                "Use the session as a context manager: `with client.websocket_connect(...)`"
            )
        return self._portal, self._session

    @property
    def accepted_subprotocol(self) -> str | None:
        return self._open[1].accepted_subprotocol

    @property
    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return self._open[1].extra_headers

    def _call(self, method: Callable[[AsyncWebSocketSession, *Ts], Awaitable[T]], *args: *Ts) -> T:
        """Run the async session's ``method`` in the portal and return what it returns."""
        portal, session = self._open
        return portal.call(method, session, *args)

    def send(self, message: Message) -> None:
        self._call(AsyncWebSocketSession.send, message)

    def send_text(self, data: str) -> None:
        self._call(AsyncWebSocketSession.send_text, data)

    def send_bytes(self, data: bytes) -> None:
        self._call(AsyncWebSocketSession.send_bytes, data)

    def send_json(self, data: Any, mode: Literal["text", "binary"] = "text") -> None:
        self._call(AsyncWebSocketSession.send_json, data, mode)

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        self._call(AsyncWebSocketSession.close, code, reason)

    def receive(self) -> Message:
        return self._call(AsyncWebSocketSession.receive)

    def receive_text(self) -> str:
        return self._call(AsyncWebSocketSession.receive_text)

    def receive_bytes(self) -> bytes:
        return self._call(AsyncWebSocketSession.receive_bytes)

    def receive_json(self, mode: Literal["text", "binary"] = "text") -> Any:
        return self._call(AsyncWebSocketSession.receive_json, mode)
