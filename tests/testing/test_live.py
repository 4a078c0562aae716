"""toolkit.testing.live: a real server for the length of an ``async with`` block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from hypercorn.utils import LifespanFailureError

from toolkit.applications import App
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse
from toolkit.routing import Route
from toolkit.testing.live import LiveServer, live_server


class LifespanApp:
    """Answers "hi"; records lifespan events; fails the lifespan phase named in ``fail``."""

    def __init__(self, fail: str | None = None) -> None:
        self.events: list[str] = []
        self.fail = fail

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"hi"})
            return
        while True:
            phase = (await receive())["type"].removeprefix("lifespan.")
            self.events.append(phase)
            outcome = "failed" if phase == self.fail else "complete"
            await send({"type": f"lifespan.{phase}.{outcome}", "message": f"{phase} broke"})
            if phase == "shutdown" or outcome == "failed":
                return


async def test_live_server_serves_and_runs_lifespan_startup_and_shutdown() -> None:
    app = LifespanApp()
    with trio.fail_after(2):
        async with live_server(app) as server:
            assert isinstance(server, LiveServer)
            assert server.host == "127.0.0.1"
            assert server.port > 0
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert app.events == ["startup"]
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.get("/")).text == "hi"
        assert app.events == ["startup", "shutdown"]


async def test_live_server_serves_a_toolkit_app_with_its_lifespan() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.path_params['name']}")

    app = App(routes=[Route("/hello/{name}", hello)], lifespan=lifespan)
    with trio.fail_after(2):
        async with (
            live_server(app) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            response = await client.get("/hello/trio")
        assert (response.status_code, response.text) == (200, "hello trio")
    assert events == ["startup", "shutdown"]


async def test_live_server_passes_hypercorn_options() -> None:
    async with (
        live_server(LifespanApp(), include_server_header=False) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        response = await client.get("/")
    assert "server" not in response.headers


async def test_error_in_block_propagates_unwrapped_and_stops_server_at_once() -> None:
    app = LifespanApp()
    with trio.fail_after(2), pytest.raises(KeyError, match="missing"):
        async with live_server(app):
            raise KeyError("missing")
    assert app.events == ["startup"]


async def test_cancelled_block_exits_quietly() -> None:
    with trio.fail_after(2), trio.move_on_after(0.05) as scope:
        async with live_server(LifespanApp()):
            await trio.sleep_forever()
    assert scope.cancelled_caught


async def test_startup_failure_propagates() -> None:
    with trio.fail_after(2), pytest.raises(LifespanFailureError, match="startup broke"):
        async with live_server(LifespanApp(fail="startup")):
            pytest.fail("the block must not run when the app failed to start")


async def test_shutdown_failure_propagates_on_exit() -> None:
    app = LifespanApp(fail="shutdown")
    with trio.fail_after(2), pytest.raises(LifespanFailureError, match="shutdown broke"):
        async with live_server(app):
            pass
    assert app.events == ["startup", "shutdown"]


def test_live_server_from_url() -> None:
    server = LiveServer.from_url("http://127.0.0.1:8123")
    assert (server.host, server.port, server.url) == ("127.0.0.1", 8123, "http://127.0.0.1:8123")
