"""run_lifespan: startup, the app's running life and shutdown, against a scripted server."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from toolkit.app_tasks import AppTasks
from toolkit.applications import App
from toolkit.lifespan import run_lifespan
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.routing import Route
from toolkit.testclient import AsyncTestClient
from toolkit.testing.leaks import no_task_leaks  # noqa: F401 (a fixture)
from toolkit.types import Message

# After each test, no toolkit task (a request's companion, an app task) may be left.
pytestmark = pytest.mark.usefixtures("no_task_leaks")

TIME_LIMIT = 2
VIRTUAL_LIMIT = 1000


class ServerFailure(Exception):
    """What a server's ``send`` raises on a failure message (hypercorn: LifespanFailureError)."""


class LifespanServer:
    """The server's side of the lifespan protocol, driven by a test."""

    def __init__(self, raise_on_failure: bool = False) -> None:
        self._to_app, self._from_server = trio.open_memory_channel[Message](math.inf)
        self.sent: list[Message] = []
        self.scope: dict[str, Any] = {"type": "lifespan", "state": {}}
        self.raise_on_failure = raise_on_failure
        self._news = trio.Event()

    async def receive(self) -> Message:
        return await self._from_server.receive()

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        self._news.set()
        self._news = trio.Event()
        if self.raise_on_failure and message["type"].endswith(".failed"):
            raise ServerFailure(message["message"])

    def types(self) -> list[str]:
        return [message["type"] for message in self.sent]

    async def ask(self, phase: str) -> Message:
        """Send ``lifespan.<phase>`` and wait for the app's answer."""
        self._to_app.send_nowait({"type": f"lifespan.{phase}"})
        while not any(t.startswith(f"lifespan.{phase}.") for t in self.types()):
            await self._news.wait()
        return self.sent[-1]

    def start(self, nursery: trio.Nursery, lifespan: Any, app: Any = None, **options: Any) -> None:
        """Run ``run_lifespan`` for ``app`` against this server, in ``nursery``."""
        nursery.start_soon(
            partial(run_lifespan, app, lifespan, self.scope, self.receive, self.send, **options)
        )


def recording_lifespan(events: list[str], state: dict[str, Any] | None = None) -> Any:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any] | None]:
        events.append(f"startup {app}")
        yield state
        events.append("shutdown")

    return lifespan


async def test_startup_state_and_shutdown_in_order() -> None:
    events: list[str] = []
    server = LifespanServer()
    lifespan = recording_lifespan(events, {"db": "connected"})
    with trio.fail_after(TIME_LIMIT):
        async with trio.open_nursery() as nursery:
            server.start(nursery, lifespan, app="the app")
            assert await server.ask("startup") == {"type": "lifespan.startup.complete"}
            assert events == ["startup the app"]
            assert server.scope["state"] == {"db": "connected"}
            assert await server.ask("shutdown") == {"type": "lifespan.shutdown.complete"}
    assert events == ["startup the app", "shutdown"]
    assert server.types() == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_state_without_server_support_fails_startup() -> None:
    server = LifespanServer()
    del server.scope["state"]
    lifespan = recording_lifespan([], {"db": "connected"})
    with trio.fail_after(TIME_LIMIT):
        async with trio.open_nursery() as nursery:
            server.start(nursery, lifespan)
            answer = await server.ask("startup")
    assert answer["type"] == "lifespan.startup.failed"
    assert 'does not support "state"' in answer["message"]


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
async def test_a_failing_phase_is_reported_with_its_traceback(
    phase: str, caplog: pytest.LogCaptureFixture
) -> None:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if phase == "startup":
            raise RuntimeError("database unreachable")
        yield
        raise RuntimeError("database unreachable")

    server = LifespanServer()
    with trio.fail_after(TIME_LIMIT):
        async with trio.open_nursery() as nursery:
            server.start(nursery, lifespan)
            if phase == "shutdown":
                await server.ask("startup")
            answer = await server.ask(phase)
    assert answer["type"] == f"lifespan.{phase}.failed"
    assert "RuntimeError: database unreachable" in answer["message"]
    assert "Traceback" in answer["message"]
    assert f"Lifespan {phase} failed" in caplog.text


async def test_the_servers_error_on_a_failure_message_propagates() -> None:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        raise RuntimeError("database unreachable")
        yield  # pragma: no cover

    server = LifespanServer(raise_on_failure=True)
    with trio.fail_after(TIME_LIMIT):
        with pytest.RaisesGroup(
            pytest.RaisesExc(ServerFailure, match="database unreachable"), flatten_subgroups=True
        ):
            async with trio.open_nursery() as nursery:
                server.start(nursery, lifespan)
                await server.ask("startup")


async def test_a_base_exception_is_reported_then_raised() -> None:
    class Stop(BaseException):
        pass

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        raise Stop()
        yield  # pragma: no cover

    server = LifespanServer()
    with trio.fail_after(TIME_LIMIT):
        with pytest.RaisesGroup(Stop, flatten_subgroups=True):
            async with trio.open_nursery() as nursery:
                server.start(nursery, lifespan)
                await server.ask("startup")
    assert server.types() == ["lifespan.startup.failed"]


async def test_cancellation_is_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    server = LifespanServer()
    tasks = AppTasks(None)
    with trio.fail_after(TIME_LIMIT):
        async with trio.open_nursery() as nursery:
            server.start(nursery, recording_lifespan(events), tasks=tasks)
            await server.ask("startup")
            tasks.start_soon(trio.sleep_forever)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()  # the server is stopped at once
    assert server.types() == ["lifespan.startup.complete"]
    assert "failed" not in caplog.text
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_app_tasks_are_drained_before_the_lifespan_exits(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    server = LifespanServer()
    tasks = AppTasks(None)

    async def work(seconds: float) -> None:
        try:
            await trio.sleep(seconds)
            events.append(f"finished {seconds}s task")
        except trio.Cancelled:
            events.append(f"cancelled {seconds}s task at {trio.current_time() - start:.0f}")
            raise

    with trio.fail_after(VIRTUAL_LIMIT):
        async with trio.open_nursery() as nursery:
            server.start(nursery, recording_lifespan(events), tasks=tasks, shutdown_timeout=5)
            await server.ask("startup")
            start = trio.current_time()
            tasks.start_soon(work, 3)
            tasks.start_soon(work, 60, name="slow work")
            assert await server.ask("shutdown") == {"type": "lifespan.shutdown.complete"}
    assert events == [
        "startup None",
        "finished 3s task",
        "cancelled 60s task at 5",
        "shutdown",
    ]
    assert "cancelling 1 app task(s) still running after 5s: slow work" in caplog.text


async def test_app_task_failures_never_escape_the_lifespan() -> None:
    reported: list[str] = []
    server = LifespanServer()
    tasks = AppTasks(lambda exc, what: reported.append(f"{what}: {exc!r}"))

    async def broken() -> None:
        raise ValueError("task broke")

    with trio.fail_after(TIME_LIMIT):
        async with trio.open_nursery() as nursery:
            server.start(nursery, recording_lifespan([]), tasks=tasks)
            await server.ask("startup")
            tasks.start_soon(broken)
            await trio.testing.wait_all_tasks_blocked()
            assert tasks.running  # still accepting tasks
            assert await server.ask("shutdown") == {"type": "lifespan.shutdown.complete"}
    name = "test_app_task_failures_never_escape_the_lifespan.<locals>.broken"
    assert reported == [f"App task '{name}': ValueError('task broke')"]


# ----------------------------------------------------------------------------- through an App


async def test_an_app_service_started_in_the_lifespan_serves_requests() -> None:
    events: list[str] = []

    async def ticker(
        send_channel: trio.MemorySendChannel[int],
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started("ticker ready")
        count = 0
        try:
            while True:
                count += 1
                await send_channel.send(count)
        finally:
            events.append("ticker stopped")

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        send_channel, receive_channel = trio.open_memory_channel[int](0)
        events.append(await app.start(ticker, send_channel))
        yield {"ticks": receive_channel}
        events.append("lifespan exits")

    async def tick(request: Request) -> Response:
        return PlainTextResponse(str(await request.state.ticks.receive()))

    app = App(routes=[Route("/", tick)], lifespan=lifespan, shutdown_timeout=0)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            assert [(await client.get("/")).text for _ in range(3)] == ["1", "2", "3"]
    assert events == ["ticker ready", "ticker stopped", "lifespan exits"]


async def test_app_tasks_need_a_running_app() -> None:
    app = App()
    with pytest.raises(RuntimeError, match="not running"):
        app.start_soon(trio.sleep, 0)
    with pytest.raises(RuntimeError, match="not running"):
        await app.start(trio.sleep, 0)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app):
            app.start_soon(trio.sleep, 0)
    with pytest.raises(RuntimeError, match="not running"):
        app.start_soon(trio.sleep, 0)  # after shutdown, again


async def test_without_a_lifespan_handlers_cannot_start_app_tasks() -> None:
    async def endpoint(request: Request) -> Response:
        request.app.start_soon(trio.sleep, 0)
        return PlainTextResponse("started")

    app = App(routes=[Route("/", endpoint)])
    with trio.fail_after(TIME_LIMIT), pytest.raises(RuntimeError, match="not running"):
        async with AsyncTestClient(app, lifespan=False) as client:
            assert (await client.get("/")).status_code == 500


async def test_a_failing_startup_cancels_its_app_tasks_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[str] = []

    async def service(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            events.append(f"service cancelled at {trio.current_time() - start:.0f}s")

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await tasks.start(service)
        raise RuntimeError("database unreachable")
        yield  # pragma: no cover

    server = LifespanServer()
    tasks = AppTasks(None)
    with trio.fail_after(VIRTUAL_LIMIT):
        async with trio.open_nursery() as nursery:
            server.start(nursery, lifespan, tasks=tasks, shutdown_timeout=30)
            start = trio.current_time()
            answer = await server.ask("startup")
            answered = trio.current_time() - start
    assert answer["type"] == "lifespan.startup.failed"
    assert answered == 0  # no shutdown grace for a startup that failed
    assert events == ["service cancelled at 0s"]
