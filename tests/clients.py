"""Both test clients behind one awaitable shape, so one test body runs through each of them.

``AsyncTestClient`` runs in the test's own trio run and is used as it is. The sync ``TestClient``
blocks its thread (its trio run lives in a portal thread), so ``ThreadedClient`` drives it from a
worker thread with the async client's call shapes, WebSockets included. The ``open_client`` and
``connect`` fixtures in ``conftest.py`` run each test once per client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any, Literal, TypeVar

import httpx
import trio

from toolkit.testclient import (
    AsyncTestClient,
    AsyncWebSocketSession,
    TestClient,
    WebSocketTestSession,
)
from toolkit.types import ASGIApp, Message

T = TypeVar("T")
JSONMode = Literal["text", "binary"]


class ThreadedWebSocket:
    """A sync ``WebSocketTestSession`` from a worker thread, with the async session's calls."""

    def __init__(self, session: WebSocketTestSession) -> None:
        self.sync = session

    async def _call(self, method: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(partial(method, *args), abandon_on_cancel=True)

    @property
    def accepted_subprotocol(self) -> str | None:
        return self.sync.accepted_subprotocol

    @property
    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return self.sync.extra_headers

    async def send(self, message: Message) -> None:
        await self._call(self.sync.send, message)

    async def send_text(self, data: str) -> None:
        await self._call(self.sync.send_text, data)

    async def send_bytes(self, data: bytes) -> None:
        await self._call(self.sync.send_bytes, data)

    async def send_json(self, data: Any, mode: JSONMode = "text") -> None:
        await self._call(self.sync.send_json, data, mode)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self._call(self.sync.close, code, reason)

    async def receive(self) -> Message:
        return await self._call(self.sync.receive)

    async def receive_text(self) -> str:
        return await self._call(self.sync.receive_text)

    async def receive_bytes(self) -> bytes:
        return await self._call(self.sync.receive_bytes)

    async def receive_json(self, mode: JSONMode = "text") -> Any:
        return await self._call(self.sync.receive_json, mode)


class ThreadedClient:
    """A sync ``TestClient`` called from a worker thread, with the async client's call shapes."""

    def __init__(self, client: TestClient) -> None:
        self.sync = client

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call = partial(self.sync.request, method, url, **kwargs)
        return await trio.to_thread.run_sync(call)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("HEAD", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def wait_idle(self) -> None:
        """The sync client returns only once the app task is done: nothing to wait for."""

    @asynccontextmanager
    async def websocket_connect(self, url: str, **kwargs: Any) -> AsyncIterator[ThreadedWebSocket]:
        """``async with client.websocket_connect(url) as ws``, the session entered from a thread."""
        session = self.sync.websocket_connect(url, **kwargs)
        await trio.to_thread.run_sync(session.__enter__, abandon_on_cancel=True)
        try:
            yield ThreadedWebSocket(session)
        except BaseException as error:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(
                    session.__exit__, type(error), error, error.__traceback__
                )
            raise
        await trio.to_thread.run_sync(session.__exit__, None, None, None)


Client = AsyncTestClient | ThreadedClient
WebSocketSession = AsyncWebSocketSession | ThreadedWebSocket
OpenClient = Callable[..., AbstractAsyncContextManager[Client]]
Connect = Callable[..., AbstractAsyncContextManager[WebSocketSession]]
ClientKind = Literal["sync", "async"]


@asynccontextmanager
async def open_client(kind: ClientKind, app: ASGIApp, **options: Any) -> AsyncIterator[Client]:
    """``async with open_client(kind, app, **options) as client``: an entered client of ``kind``."""
    if kind == "async":
        async with AsyncTestClient(app, **options) as client:
            yield client
        return
    sync_client = TestClient(app, **options)
    await trio.to_thread.run_sync(sync_client.__enter__)
    try:
        yield ThreadedClient(sync_client)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(sync_client.__exit__, None, None, None)


@asynccontextmanager
async def connect(
    open_client: OpenClient,
    app: ASGIApp,
    path: str = "/ws",
    client: dict[str, Any] | None = None,
    **kwargs: Any,
) -> AsyncIterator[WebSocketSession]:
    """A WebSocket session on ``path`` through a client from ``open_client`` (``client`` options).

    ``kwargs`` go to ``websocket_connect`` (``subprotocols``, ``headers``); the whole session
    must end within 10 seconds.
    """
    with trio.fail_after(10):
        async with (
            open_client(app, **(client or {})) as opened,
            opened.websocket_connect(path, **kwargs) as session,
        ):
            yield session
