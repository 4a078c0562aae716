"""App lifespans through the real hypercorn trio server on 127.0.0.1.

State reaching requests, a failing startup or shutdown stopping the server with
the error, app services started in the lifespan, and the shutdown order: app
tasks drained (then cancelled), the lifespan's own exit, then the server's
return. No toolkit task (nor one of this module's) may outlive a server.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from hypercorn.utils import LifespanFailureError

from toolkit.applications import App
from toolkit.requests import Request
from toolkit.responses import JSONResponse, PlainTextResponse, Response
from toolkit.routing import Route
from toolkit.testing.leaks import TaskLeakChecker
from toolkit.testing.live import LiveServer, live_server
from toolkit.types import ASGIApp

TIME_LIMIT = 5


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[LiveServer]:
    """Serve ``app``; after the server has returned, fail if a task of ours is still alive."""
    async with TaskLeakChecker(modules=[__name__]), live_server(app) as server:
        yield server


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def test_lifespan_state_reaches_every_request_as_a_fresh_shallow_copy() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"pool": ["connection"], "name": "primary"}
        events.append("shutdown")

    async def endpoint(request: Request) -> Response:
        seen = {"name": request.state.name, "leftover": getattr(request.state, "mine", None)}
        request.state.mine = "set by an earlier request"
        request.state.pool.append("shared")  # the objects themselves are shared
        return JSONResponse(seen)

    app = App(routes=[Route("/", endpoint)], lifespan=lifespan)
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            assert events == ["startup"]
            first = (await client.get("/")).json()
            second = (await client.get("/")).json()
    assert first == second == {"name": "primary", "leftover": None}
    assert events == ["startup", "shutdown"]


async def test_a_failing_startup_stops_the_server_with_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    served: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        raise ConnectionRefusedError("database unreachable")
        yield  # pragma: no cover

    app = App(lifespan=lifespan)
    with trio.fail_after(TIME_LIMIT):
        async with TaskLeakChecker(modules=[__name__]):
            with pytest.raises(LifespanFailureError) as info:
                async with live_server(app):
                    served.append("the block ran")  # pragma: no cover
    assert served == []
    assert "ConnectionRefusedError: database unreachable" in str(info.value)
    assert "Lifespan startup failed" in errors_logged(caplog)


async def test_a_failing_shutdown_is_raised_after_serving() -> None:
    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        yield
        raise OSError("could not flush the cache")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("served")

    app = App(routes=[Route("/", endpoint)], lifespan=lifespan)
    with trio.fail_after(TIME_LIMIT):
        async with TaskLeakChecker(modules=[__name__]):
            with pytest.raises(LifespanFailureError, match="could not flush the cache"):
                async with (
                    live_server(app) as server,
                    httpx.AsyncClient(base_url=server.url) as client,
                ):
                    assert (await client.get("/")).text == "served"


async def test_services_started_in_the_lifespan_are_cancelled_before_it_exits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []

    async def heartbeat(
        beats: list[int], task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started("heartbeat running")
        try:
            while True:
                beats.append(len(beats))
                await trio.sleep(0.005)
        finally:
            events.append("heartbeat stopped")

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        beats: list[int] = []
        events.append(await app.start(heartbeat, beats))
        yield {"beats": beats}
        events.append("lifespan exit")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(str(len(request.state.beats) > 0))

    app = App(routes=[Route("/", endpoint)], lifespan=lifespan, shutdown_timeout=0.05)
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            await trio.sleep(0.02)
            assert (await client.get("/")).text == "True"
    assert events == ["heartbeat running", "heartbeat stopped", "lifespan exit"]
    assert "still running after 0.05s" in caplog.text


async def test_a_failing_app_task_leaves_the_server_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported: list[str] = []
    crashed = trio.Event()

    async def flaky() -> None:
        await trio.sleep(0.01)
        raise RuntimeError("flaky service crashed")

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        app.start_soon(flaky, name="flaky service")
        yield

    def on_task_error(exc: BaseException, description: str) -> None:
        reported.append(f"{description}: {exc}")
        crashed.set()

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("still serving")

    app = App(routes=[Route("/", endpoint)], lifespan=lifespan, on_task_error=on_task_error)
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            await crashed.wait()
            assert (await client.get("/")).text == "still serving"
    assert reported == ["App task 'flaky service': flaky service crashed"]
    assert errors_logged(caplog) == ["App task 'flaky service' failed"]


async def test_a_server_stopped_at_once_reports_no_lifespan_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            events.append("app task cancelled")

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        app.start_soon(forever)
        yield

    app = App(lifespan=lifespan)
    with trio.fail_after(TIME_LIMIT):
        async with TaskLeakChecker(modules=[__name__]):
            with pytest.raises(KeyError, match="the test gave up"):
                async with live_server(app):
                    raise KeyError("the test gave up")  # the server is cancelled, not drained
    assert events == ["app task cancelled"]
    assert errors_logged(caplog) == []
