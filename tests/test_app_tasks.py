"""AppTasks: the app's supervised nursery, its error reporting and its drain at shutdown."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from toolkit.app_tasks import AppTasks, describe, report_task_error
from toolkit.applications import App
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.routing import Route
from toolkit.testclient import AsyncTestClient
from toolkit.testing.leaks import no_task_leaks  # noqa: F401 (a fixture)

# After each test, no toolkit task (a request's companion, an app task) may be left.
pytestmark = pytest.mark.usefixtures("no_task_leaks")

TIME_LIMIT = 2
VIRTUAL_LIMIT = 1000


@asynccontextmanager
async def running(tasks: AppTasks, shutdown_timeout: float = 10) -> AsyncIterator[AppTasks]:
    async with tasks.open(shutdown_timeout):
        yield tasks


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


async def broken(message: str = "task broke") -> None:
    await trio.lowlevel.checkpoint()
    raise ValueError(message)


async def test_starting_tasks_needs_an_open_nursery() -> None:
    tasks = AppTasks(None)
    assert not tasks.running
    with pytest.raises(RuntimeError, match="not running"):
        tasks.start_soon(trio.sleep, 0)
    with pytest.raises(RuntimeError, match="not running"):
        await tasks.start(trio.sleep, 0)
    with trio.fail_after(TIME_LIMIT):
        async with running(tasks):
            assert tasks.running
            tasks.start_soon(trio.sleep, 0)
    assert not tasks.running
    with pytest.raises(RuntimeError, match="not running"):
        tasks.start_soon(trio.sleep, 0)


async def test_start_returns_the_started_value() -> None:
    async def service(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started("listening")
        await trio.sleep(0.001)

    with trio.fail_after(TIME_LIMIT):
        async with running(AppTasks(None)) as tasks:
            assert await tasks.start(service) == "listening"


async def test_start_raises_a_failure_before_started_to_its_caller_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported: list[BaseException] = []

    async def fails_to_start(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise OSError("port in use")

    async def never_starts(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        return

    with trio.fail_after(TIME_LIMIT):
        async with running(AppTasks(lambda exc, what: reported.append(exc))) as tasks:
            with pytest.raises(OSError, match="port in use"):
                await tasks.start(fails_to_start)
            with pytest.raises(RuntimeError, match="started"):
                await tasks.start(never_starts)
            tasks.start_soon(trio.sleep, 0)  # the nursery is fine
    assert reported == []
    assert error_records(caplog) == []


async def test_a_failure_after_started_is_reported() -> None:
    reported: list[str] = []

    async def crashes_later(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await broken("crashed while serving")

    with trio.fail_after(TIME_LIMIT):
        async with running(AppTasks(lambda exc, what: reported.append(f"{what}: {exc}"))) as tasks:
            await tasks.start(crashes_later, name="the service")
            await trio.testing.wait_all_tasks_blocked()
    assert reported == ["App task 'the service': crashed while serving"]


async def test_a_failing_task_is_logged_and_reported_and_others_run_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported: list[tuple[BaseException, str]] = []
    finished = trio.Event()

    async def survivor() -> None:
        await trio.sleep(0.01)
        finished.set()

    with trio.fail_after(TIME_LIMIT):
        async with running(AppTasks(lambda exc, what: reported.append((exc, what)))) as tasks:
            tasks.start_soon(survivor)
            tasks.start_soon(broken, name="broken task")
            await finished.wait()
            assert tasks.running
    [(exc, what)] = reported
    assert isinstance(exc, ValueError)
    assert what == "App task 'broken task'"
    [record] = error_records(caplog)
    assert record.getMessage() == "App task 'broken task' failed"
    assert record.exc_info is not None and record.exc_info[1] is exc


async def test_on_task_error_may_be_async() -> None:
    reported: list[str] = []

    async def on_task_error(exc: BaseException, description: str) -> None:
        await trio.sleep(0)
        reported.append(description)

    with trio.fail_after(TIME_LIMIT):
        async with running(AppTasks(on_task_error)) as tasks:
            tasks.start_soon(broken, name="first")
            tasks.start_soon(broken, name="second")
    assert sorted(reported) == ["App task 'first'", "App task 'second'"]


@pytest.mark.parametrize("is_async", [False, True])
async def test_an_on_task_error_that_raises_is_logged_not_raised(
    is_async: bool, caplog: pytest.LogCaptureFixture
) -> None:
    def sync_handler(exc: BaseException, description: str) -> None:
        raise RuntimeError("reporter broke")

    async def async_handler(exc: BaseException, description: str) -> None:
        raise RuntimeError("reporter broke")

    handler = async_handler if is_async else sync_handler
    with trio.fail_after(TIME_LIMIT):
        await report_task_error(ValueError("x"), "Background task 'job'", handler)
    messages = [record.getMessage() for record in error_records(caplog)]
    assert messages == [
        "Background task 'job' failed",
        "on_task_error raised while reporting Background task 'job'",
    ]


async def test_drain_waits_for_tasks_within_the_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    finished: list[float] = []

    async def work(seconds: float) -> None:
        await trio.sleep(seconds)
        finished.append(seconds)

    with trio.fail_after(VIRTUAL_LIMIT):
        async with running(AppTasks(None), shutdown_timeout=10) as tasks:
            tasks.start_soon(work, 3)
            tasks.start_soon(work, 9)
            start = trio.current_time()
    assert finished == [3, 9]
    assert trio.current_time() - start == pytest.approx(9)
    assert "cancelling" not in caplog.text


async def test_drain_cancels_what_outlives_the_timeout_names_it_and_waits_for_its_cleanup(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []

    async def stubborn(label: str) -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(1)  # clean-up that takes a while
            events.append(f"{label} cleaned up at {trio.current_time() - start:.0f}")

    with trio.fail_after(VIRTUAL_LIMIT):
        tasks = AppTasks(None)
        async with running(tasks, shutdown_timeout=5):
            start = trio.current_time()
            tasks.start_soon(stubborn, "b", name="b-service")
            tasks.start_soon(stubborn, "a")
            tasks.start_soon(trio.sleep, 2)
            await trio.sleep(1)
        events.append("drained")
    name = "test_drain_cancels_what_outlives_the_timeout_names_it_and_waits_for_its_cleanup"
    # The drain starts at 1 s, cancels at 1 + 5 s, and the clean-up takes 1 s more.
    assert sorted(events[:2]) == ["a cleaned up at 7", "b cleaned up at 7"]
    assert events[2:] == ["drained"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Shutdown: cancelling 2 app task(s) still running after 5s: "
        f"b-service, {name}.<locals>.stubborn"
    ]


async def test_a_task_started_just_before_the_drain_is_waited_for(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[str] = []

    async def late(task_status: Any = None) -> None:
        try:
            await trio.sleep(60)
        finally:
            events.append("late task ended")

    with trio.fail_after(VIRTUAL_LIMIT):
        tasks = AppTasks(None)
        async with running(tasks, shutdown_timeout=5):
            tasks.start_soon(late)  # not yet run when the drain begins
            start = trio.current_time()
        events.append(f"drained after {trio.current_time() - start:.0f}s")
    assert events == ["late task ended", "drained after 5s"]


async def test_describe_names_tasks() -> None:
    async def job() -> None:
        pass

    assert describe(job) == "test_describe_names_tasks.<locals>.job"
    assert describe(job, name="nightly job") == "nightly job"
    assert describe(functools.partial(job)).startswith("functools.partial(")


# ----------------------------------------------------------------------------- through an App


async def test_handlers_start_app_tasks_that_outlive_their_request() -> None:
    events: list[str] = []
    request_done = trio.Event()

    async def after_the_request() -> None:
        await request_done.wait()
        events.append("app task ran after the request")

    async def endpoint(request: Request) -> Response:
        request.app.start_soon(after_the_request)
        return PlainTextResponse("ok")

    app = App(routes=[Route("/", endpoint)])
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            assert (await client.get("/")).text == "ok"
            await client.wait_idle()
            request_done.set()
    assert events == ["app task ran after the request"]


async def test_app_shutdown_timeout_and_on_task_error(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    reported: list[str] = []

    async def endpoint(request: Request) -> Response:
        request.app.start_soon(trio.sleep, 1, name="short job")
        request.app.start_soon(trio.sleep_forever, name="endless job")
        request.app.start_soon(broken, name="failing job")
        return PlainTextResponse("ok")

    app = App(
        routes=[Route("/", endpoint)],
        shutdown_timeout=30,
        on_task_error=lambda exc, what: reported.append(f"{what}: {exc}"),
    )
    with trio.fail_after(VIRTUAL_LIMIT):
        async with AsyncTestClient(app) as client:
            assert (await client.get("/")).text == "ok"
            start = trio.current_time()
    assert trio.current_time() - start == pytest.approx(30)
    assert reported == ["App task 'failing job': task broke"]
    assert "cancelling 1 app task(s) still running after 30s: endless job" in caplog.text
