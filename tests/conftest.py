"""Shared fixtures: ``open_client`` runs one test body through both test clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from toolkit.testclient import AsyncTestClient, TestClient
from toolkit.types import ASGIApp


class Client:
    """The same async calls over either client; the sync one is driven from a worker thread."""

    def __init__(self, client: TestClient | AsyncTestClient) -> None:
        self.client = client

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if isinstance(self.client, AsyncTestClient):
            return await self.client.request(method, url, **kwargs)
        # The sync client blocks on its own trio run, so keep it off this run's thread.
        sync_client = self.client
        return await trio.to_thread.run_sync(lambda: sync_client.request(method, url, **kwargs))

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


OpenClient = Callable[..., AbstractAsyncContextManager[Client]]


@asynccontextmanager
async def _open_async(app: ASGIApp, **options: Any) -> AsyncIterator[Client]:
    async with AsyncTestClient(app, **options) as client:
        yield Client(client)


@asynccontextmanager
async def _open_sync(app: ASGIApp, **options: Any) -> AsyncIterator[Client]:
    client = TestClient(app, **options)
    await trio.to_thread.run_sync(client.__enter__)
    try:
        yield Client(client)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(client.__exit__, None, None, None)


@pytest.fixture(params=["sync", "async"])
def open_client(request: pytest.FixtureRequest) -> OpenClient:
    """``async with open_client(app, **options) as client``: once per test client."""
    opener: OpenClient = _open_sync if request.param == "sync" else _open_async
    return opener
