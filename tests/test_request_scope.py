"""The request scope, through an App and the in-process AsyncTestClient.

What one request owns, and when each part ends: its cancel scope (client
disconnect, deadline), ``request.nursery``, its exit stack and its background
tasks; contextvars; thread limits. Disconnects are made the way a client makes
them: by cancelling a request before its response, or closing a streamed
response early. Deadlines run on ``autojump_clock``, so they take no real time.
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from tests.apps import RecordResponseEnd
from tests.garbage import toolkit_garbage
from toolkit.applications import App
from toolkit.background import BackgroundTask, BackgroundTasks
from toolkit.exceptions import HTTPException
from toolkit.middleware import Middleware
from toolkit.middleware.errors import ServerErrorMiddleware
from toolkit.request_scope import SCOPE_KEY, ResponseTracker, _run_until_blocked
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response, StreamingResponse
from toolkit.routing import Mount, Route
from toolkit.testclient import AsyncTestClient
from toolkit.testing.leaks import no_task_leaks  # noqa: F401 (a fixture)
from toolkit.types import ASGIApp, Message, Receive, Scope, Send

# After each test, no toolkit task (a request's companion, an app task) may be left.
pytestmark = pytest.mark.usefixtures("no_task_leaks")

TIME_LIMIT = 2
#: With ``autojump_clock`` the bound is in virtual seconds, so it can be generous.
VIRTUAL_LIMIT = 1000

Endpoint = Callable[[Request], Awaitable[Response]]


def app_with(endpoint: Endpoint, methods: list[str] | None = None, **options: Any) -> App:
    """An App serving ``endpoint`` at ``/``; ``options`` go to the App."""
    return App(routes=[Route("/", endpoint, methods=methods)], **options)


async def leave_when(client: AsyncTestClient, ready: trio.Event, **request: Any) -> None:
    """Send a request and, once ``ready`` is set, give up on it: the client disconnects."""
    request.setdefault("method", "GET")
    request.setdefault("url", "/")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: client.request(**request))
        await ready.wait()
        nursery.cancel_scope.cancel()


# ----------------------------------------------------------------------------- the first block


async def test_run_until_blocked_returns_without_calling_back_when_never_blocking() -> None:
    blocked: list[str] = []

    async def immediate() -> int:
        return 42

    def on_block() -> bool:
        blocked.append("blocked")
        return True

    assert await _run_until_blocked(immediate(), on_block) == 42
    assert blocked == []


async def steps(events: list[str]) -> str:
    events.append("start")
    for index in range(3):
        await trio.lowlevel.checkpoint()
        events.append(f"step {index}")
    return "done"


async def test_run_until_blocked_calls_back_at_each_block_until_told_to_stop() -> None:
    events: list[str] = []
    answers = iter([False, True])

    def on_block() -> bool:
        events.append("BLOCK")
        return next(answers)

    with trio.fail_after(TIME_LIMIT):
        assert await _run_until_blocked(steps(events), on_block) == "done"
    assert events == ["start", "BLOCK", "step 0", "BLOCK", "step 1", "step 2"]


async def test_run_until_blocked_calls_back_at_every_block_if_never_stopped() -> None:
    events: list[str] = []

    def on_block() -> bool:
        events.append("BLOCK")
        return False

    with trio.fail_after(TIME_LIMIT):
        assert await _run_until_blocked(steps(events), on_block) == "done"
    assert events == ["start", "BLOCK", "step 0", "BLOCK", "step 1", "BLOCK", "step 2"]


async def test_run_until_blocked_passes_errors_and_cancellation_through() -> None:
    async def fails_at_once() -> None:
        raise KeyError("early")

    with pytest.raises(KeyError, match="early"):
        await _run_until_blocked(fails_at_once(), lambda: True)

    async def fails_later() -> None:
        await trio.lowlevel.checkpoint()
        raise KeyError("late")

    with pytest.raises(KeyError, match="late"):
        await _run_until_blocked(fails_later(), lambda: True)

    cleaned_up: list[str] = []

    async def sleeps() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned_up.append("finally")

    with trio.fail_after(TIME_LIMIT), trio.move_on_after(0.01) as scope:
        await _run_until_blocked(sleeps(), lambda: False)
    assert scope.cancelled_caught
    assert cleaned_up == ["finally"]


# ----------------------------------------------------------------------------- request.nursery


async def test_children_started_before_and_after_the_first_block_are_joined() -> None:
    events: list[str] = []

    async def child(label: str) -> None:
        await trio.sleep(0.01)
        events.append(f"child {label} done")

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(child, "early")  # before the handler ever waits
        await trio.sleep(0)
        request.nursery.start_soon(child, "late", name="late child")
        return PlainTextResponse(
            "ok", background=BackgroundTask(lambda: events.append("background"))
        )

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "ok"
            await client.wait_idle()
    assert sorted(events[:2]) == ["child early done", "child late done"]
    assert events[2:] == ["background"]


async def test_start_returns_the_started_value_and_the_child_runs_on() -> None:
    events: list[str] = []

    async def service(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started("ready")
        await trio.sleep(0.01)
        events.append("service done")

    async def endpoint(request: Request) -> Response:
        value = await request.nursery.start(service)
        events.append(f"started: {value}")
        return PlainTextResponse(value)

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "ready"
            await client.wait_idle()
    assert events == ["started: ready", "service done"]


async def test_start_raises_a_failure_before_started_into_the_handler() -> None:
    async def broken(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise LookupError("could not start")

    async def endpoint(request: Request) -> Response:
        try:
            await request.nursery.start(broken)
        except LookupError as exc:
            return PlainTextResponse(f"caught {exc}")
        return PlainTextResponse("not raised")

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "caught could not start"


def failing_child_app(events: list[str], **options: Any) -> App:
    """``/``: a child fails while the handler waits; the handler records its cancellation."""

    async def child() -> None:
        await trio.sleep(0.01)
        raise ValueError("child broke")

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(child)
        try:
            await trio.sleep(10)
        finally:
            events.append("handler finally")
        return PlainTextResponse("never")

    return app_with(endpoint, **options)


async def test_a_failing_child_fails_the_request_like_the_handler_would() -> None:
    events: list[str] = []
    app = failing_child_app(events)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app, raise_server_exceptions=False) as client:
            response = await client.get("/")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert events == ["handler finally"]


async def test_a_failing_child_reaches_the_client_as_the_error_itself() -> None:
    events: list[str] = []
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(failing_child_app(events)) as client:
            assert (await client.get("/")).status_code == 500
            # As for a handler's own error: the 500 is sent, then the error is raised.
            with pytest.raises(ValueError, match="child broke"):
                await client.wait_idle()


async def test_a_failing_child_is_answered_by_its_registered_handler() -> None:
    async def on_value_error(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"handled: {exc}", status_code=409)

    events: list[str] = []
    app = failing_child_app(events, exception_handlers={ValueError: on_value_error})
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            response = await client.get("/")
    assert (response.status_code, response.text) == (409, "handled: child broke")


async def test_a_child_failing_after_the_response_is_reported_like_a_handler_error() -> None:
    async def child() -> None:
        await trio.sleep(0.01)
        raise ValueError("late child broke")

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(child)
        return PlainTextResponse("sent already")

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "sent already"
            with pytest.raises(ValueError, match="late child broke"):
                await client.wait_idle()


async def test_a_failing_handler_cancels_its_children_as_a_nursery_body_would(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[str] = []

    async def child() -> None:
        try:
            await trio.sleep(60)
        finally:
            events.append(f"child ended at {trio.current_time() - start:.0f}s")

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(child)
        await trio.sleep(1)
        raise KeyError("handler broke")

    with trio.fail_after(VIRTUAL_LIMIT):
        async with AsyncTestClient(app_with(endpoint), raise_server_exceptions=False) as client:
            start = trio.current_time()
            response = await client.get("/")
            answered = trio.current_time() - start
    assert response.status_code == 500
    assert answered == pytest.approx(1)  # not after the child's 60 s
    assert events == ["child ended at 1s"]


async def test_cancelling_the_nursery_cancels_the_children_not_the_handler() -> None:
    events: list[str] = []

    async def child() -> None:
        try:
            await trio.sleep_forever()
        finally:
            events.append("child cancelled")

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(child)
        await trio.sleep(0.01)
        request.nursery.cancel_scope.cancel()
        await trio.sleep(0.01)
        return PlainTextResponse("handler carried on")

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "handler carried on"
    assert events == ["child cancelled"]


async def test_children_may_start_siblings_after_the_response_as_in_a_trio_nursery() -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        async def worker(index: int) -> None:
            await trio.sleep(0.001)
            events.append(f"worker {index}")

        async def fan_out() -> None:
            await trio.sleep(0.01)  # the response has been sent by now
            for index in range(3):
                request.nursery.start_soon(worker, index)

        request.nursery.start_soon(fan_out)
        return PlainTextResponse(
            "ok", background=BackgroundTask(lambda: events.append("background"))
        )

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "ok"
            await client.wait_idle()
    assert sorted(events[:3]) == ["worker 0", "worker 1", "worker 2"]
    assert events[3:] == ["background"]


async def test_the_nursery_takes_no_tasks_once_the_request_is_over() -> None:
    errors: list[BaseException] = []

    async def endpoint(request: Request) -> Response:
        async def later() -> None:
            try:
                request.nursery.start_soon(trio.sleep, 0)
            except RuntimeError as exc:
                errors.append(exc)

        request.nursery.start_soon(trio.sleep, 0)  # the nursery exists during the request
        return PlainTextResponse("ok", background=BackgroundTask(later))

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            await client.get("/")
            await client.wait_idle()
    assert len(errors) == 1


async def test_request_scope_features_need_an_app() -> None:
    request = Request({"type": "http", "headers": []})
    with pytest.raises(RuntimeError, match="toolkit App"):
        request.nursery  # noqa: B018
    with pytest.raises(RuntimeError, match="toolkit App"):
        request.exit_stack  # noqa: B018
    with pytest.raises(RuntimeError, match="toolkit App"):
        await request.wait_disconnected()
    assert request.deadline == math.inf
    assert await request.is_disconnected() is False


# ----------------------------------------------------------------------------- cancel on disconnect


async def test_a_client_leaving_cancels_the_handler_and_its_children() -> None:
    waiting = trio.Event()
    events: list[str] = []

    async def child() -> None:
        try:
            await trio.sleep_forever()
        finally:
            events.append("child finally")

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(child)
        try:
            waiting.set()
            await trio.sleep_forever()
        finally:
            events.append("handler finally")
        return PlainTextResponse("never")

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            await leave_when(client, waiting)
            await client.wait_idle()
    assert sorted(events) == ["child finally", "handler finally"]


async def test_closing_a_stream_early_stops_the_generator() -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        async def numbers() -> AsyncIterator[bytes]:
            try:
                for index in range(1000):
                    yield b"%d\n" % index
                    await trio.sleep(0.001)
            finally:
                events.append("generator closed")

        return StreamingResponse(numbers(), media_type="text/plain")

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            async with client.stream("GET", "/") as response:
                async for line in response.aiter_lines():
                    if line == "2":
                        break
            await client.wait_idle()
    assert events == ["generator closed"]


async def test_closing_a_stream_early_stops_a_generator_that_never_waits() -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        async def forever() -> AsyncIterator[bytes]:
            try:
                while True:  # only ever blocks in send
                    yield b"x" * 100
            finally:
                events.append("generator closed")

        return StreamingResponse(forever())

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            async with client.stream("GET", "/") as response:
                async for _ in response.aiter_bytes():
                    break
            await client.wait_idle()
    assert events == ["generator closed"]


async def test_a_handler_reading_the_body_itself_works_while_disconnects_are_watched() -> None:
    async def endpoint(request: Request) -> Response:
        total = 0
        await trio.sleep(0.01)  # blocks first: the watcher starts before the body is read
        async for chunk in request.stream():
            total += len(chunk)
            await trio.sleep(0)
        return PlainTextResponse(str(total))

    async def body() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 10_000

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint, methods=["POST"])) as client:
            response = await client.post("/", content=body())
    assert response.text == "1000000"


@pytest.mark.parametrize(
    ("app_option", "route_option"),
    [(False, None), (True, False), (False, False)],
    ids=["app-off", "route-off", "both-off"],
)
async def test_with_cancel_on_disconnect_off_the_handler_finishes(
    app_option: bool, route_option: bool | None
) -> None:
    waiting = trio.Event()
    finished = trio.Event()
    seen: list[bool] = []

    async def endpoint(request: Request) -> Response:
        waiting.set()
        await request.wait_disconnected()
        seen.append(await request.is_disconnected())
        await trio.sleep(0.01)  # still running after the client left
        finished.set()
        return PlainTextResponse("nobody reads this")

    route_options: dict[str, Any] = (
        {} if route_option is None else {"cancel_on_disconnect": route_option}
    )
    app = App(routes=[Route("/", endpoint, **route_options)], cancel_on_disconnect=app_option)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            await leave_when(client, waiting)
            await finished.wait()
            await client.wait_idle()
    assert seen == [True]


async def test_a_route_can_turn_cancel_on_disconnect_on_under_an_app_that_has_it_off() -> None:
    waiting = trio.Event()
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        try:
            waiting.set()
            await trio.sleep(10)
        finally:
            events.append("handler finally")
        events.append("handler finished")
        return PlainTextResponse("too late")

    app = App(routes=[Route("/", endpoint, cancel_on_disconnect=True)], cancel_on_disconnect=False)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            await leave_when(client, waiting)
            await client.wait_idle()
    assert events == ["handler finally"]


async def test_a_mount_passes_cancel_on_disconnect_to_its_routes() -> None:
    waiting = trio.Event()
    finished: list[str] = []

    async def endpoint(request: Request) -> Response:
        waiting.set()
        await request.wait_disconnected()
        finished.append(request.url.path)
        return PlainTextResponse("nobody reads this")

    app = App(routes=[Mount("/keep", routes=[Route("/", endpoint)], cancel_on_disconnect=False)])
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            await leave_when(client, waiting, url="/keep/")
            await client.wait_idle()
    assert finished == ["/keep/"]


@pytest.mark.parametrize("cancel_on_disconnect", [True, False])
async def test_is_disconnected_is_false_while_the_client_waits(cancel_on_disconnect: bool) -> None:
    async def endpoint(request: Request) -> Response:
        answers = [await request.is_disconnected()]
        await request.body()
        await trio.sleep(0.01)
        answers.append(await request.is_disconnected())
        return PlainTextResponse(repr(answers))

    app = app_with(endpoint, methods=["POST"], cancel_on_disconnect=cancel_on_disconnect)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            response = await client.post("/", content=b"x" * 100_000)
    assert response.text == "[False, False]"


@pytest.mark.parametrize("cancel_on_disconnect", [True, False])
async def test_wait_disconnected_does_not_return_while_the_client_waits(
    cancel_on_disconnect: bool,
) -> None:
    async def endpoint(request: Request) -> Response:
        with trio.move_on_after(0.05) as scope:
            await request.wait_disconnected()
        return PlainTextResponse(f"timed out: {scope.cancelled_caught}")

    app = app_with(endpoint, cancel_on_disconnect=cancel_on_disconnect)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            assert (await client.get("/")).text == "timed out: True"


@pytest.mark.xfail(
    strict=True,
    reason="is_disconnected() starts the watcher (a system task, then a child task, then a "
    "receive) and gives it one checkpoint: the first call after a quiet client left says "
    "False; a polling loop sees True on a later call. A one-off answer needs a non-blocking "
    "read, which ASGI's receive() cannot do safely.",
)
async def test_is_disconnected_answers_at_once_after_the_client_left() -> None:
    waiting = trio.Event()
    left = trio.Event()
    answers: list[bool] = []

    async def endpoint(request: Request) -> Response:
        waiting.set()
        await left.wait()
        answers.append(await request.is_disconnected())
        return PlainTextResponse("nobody reads this")

    app = app_with(endpoint, cancel_on_disconnect=False)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            await leave_when(client, waiting)
            await trio.testing.wait_all_tasks_blocked()
            left.set()
            await client.wait_idle()
    assert answers == [True]


async def test_wait_disconnected_in_a_handler_with_cancel_on_disconnect_on() -> None:
    waiting = trio.Event()
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        try:
            waiting.set()
            await request.wait_disconnected()
            events.append("returned")  # cancellation may win the race; either is fine
        finally:
            events.append("finally")
        await trio.sleep(10)
        events.append("not cancelled")
        return PlainTextResponse("never")

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            await leave_when(client, waiting)
            await client.wait_idle()
    assert "finally" in events
    assert "not cancelled" not in events


# ----------------------------------------------------------------------------- deadlines


async def test_deadline_is_absolute_trio_time(autojump_clock: trio.testing.MockClock) -> None:
    deadlines: dict[str, float] = {}
    starts: dict[str, float] = {}

    async def endpoint(request: Request) -> Response:
        starts[request.url.path] = trio.current_time()
        deadlines[request.url.path] = request.deadline
        return PlainTextResponse("ok")

    app = App(
        routes=[
            Route("/app", endpoint),
            Route("/route", endpoint, timeout=5),
            Route("/unlimited", endpoint, timeout=None),
            Mount(
                "/mount",
                routes=[Route("/inner", endpoint), Route("/own", endpoint, timeout=2)],
                timeout=7,
            ),
        ],
        request_timeout=30,
    )
    with trio.fail_after(VIRTUAL_LIMIT):
        async with AsyncTestClient(app) as client:
            for path in ("/app", "/route", "/unlimited", "/mount/inner", "/mount/own"):
                await trio.sleep(1)  # a different start time for each request
                assert (await client.get(path)).status_code == 200
    relative = {path: deadlines[path] - starts[path] for path in deadlines}
    assert relative == {
        "/app": 30,
        "/route": 5,
        "/unlimited": math.inf,
        "/mount/inner": 7,
        "/mount/own": 2,
    }


async def test_no_deadline_by_default() -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(repr(request.deadline))

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "inf"


@pytest.mark.parametrize(
    "options",
    [
        {"app": {"request_timeout": 3}, "route": {}},
        {"app": {}, "route": {"timeout": 3}},
        {"app": {"request_timeout": 100}, "route": {"timeout": 3}},
        {"app": {"cancel_on_disconnect": False, "request_timeout": 3}, "route": {}},
        {"app": {"cancel_on_disconnect": False}, "route": {"timeout": 3}},
        {"app": {}, "route": {"timeout": 3, "cancel_on_disconnect": False}},
    ],
    ids=["app", "route", "route-wins", "app-cod-off", "route-under-cod-off", "route-cod-off"],
)
async def test_a_slow_handler_gets_504_at_its_deadline(
    autojump_clock: trio.testing.MockClock, options: dict[str, dict[str, Any]]
) -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        try:
            await trio.sleep(60)
        finally:
            events.append("handler finally")
        return PlainTextResponse("too late")

    app = App(routes=[Route("/", endpoint, **options["route"])], **options["app"])
    with trio.fail_after(VIRTUAL_LIMIT):
        async with AsyncTestClient(app) as client:
            start = trio.current_time()
            response = await client.get("/")
            elapsed = trio.current_time() - start
    assert (response.status_code, response.text) == (504, "Gateway Timeout")
    assert elapsed == pytest.approx(3)
    assert events == ["handler finally"]


async def test_a_registered_504_handler_answers_a_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def on_timeout(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return PlainTextResponse(f"took too long: {request.url.path}", status_code=exc.status_code)

    async def endpoint(request: Request) -> Response:
        await trio.sleep(60)
        return PlainTextResponse("too late")

    app = app_with(endpoint, request_timeout=1, exception_handlers={504: on_timeout})
    with trio.fail_after(VIRTUAL_LIMIT):
        async with AsyncTestClient(app) as client:
            response = await client.get("/")
    assert (response.status_code, response.text) == (504, "took too long: /")


async def test_a_slow_stream_ends_cleanly_at_its_deadline(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"first,"
                await trio.sleep(60)
                yield b"never"
            finally:
                events.append("generator closed")

        return StreamingResponse(chunks())

    with trio.fail_after(VIRTUAL_LIMIT):
        async with AsyncTestClient(app_with(endpoint, request_timeout=5)) as client:
            start = trio.current_time()
            response = await client.get("/")
            elapsed = trio.current_time() - start
    assert (response.status_code, response.content) == (200, b"first,")
    assert elapsed == pytest.approx(5)
    assert events == ["generator closed"]
    assert "Deadline passed while streaming GET /" in caplog.text


async def test_children_are_cancelled_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[str] = []

    async def child() -> None:
        try:
            await trio.sleep(60)
        finally:
            events.append(f"child cancelled at {trio.current_time():.0f}")

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(child)
        await trio.sleep(60)
        return PlainTextResponse("too late")

    with trio.fail_after(VIRTUAL_LIMIT):
        async with AsyncTestClient(app_with(endpoint, request_timeout=4)) as client:
            start = trio.current_time()
            assert (await client.get("/")).status_code == 504
    assert events == [f"child cancelled at {start + 4:.0f}"]


async def test_a_handler_can_bound_its_own_io_by_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def endpoint(request: Request) -> Response:
        with trio.move_on_at(request.deadline - 1):
            await trio.sleep(60)
        return PlainTextResponse(
            f"answered with {request.deadline - trio.current_time():.0f}s left"
        )

    with trio.fail_after(VIRTUAL_LIMIT):
        async with AsyncTestClient(app_with(endpoint, request_timeout=10)) as client:
            assert (await client.get("/")).text == "answered with 1s left"


# ----------------------------------------------------------------------------- exit stack, order


async def test_exit_stack_closes_after_the_last_byte_and_children_before_background() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def session() -> AsyncIterator[str]:
        events.append("session opened")
        try:
            yield "session"
        finally:
            events.append("session closed")

    async def child() -> None:
        await trio.sleep(0.01)
        events.append("child done")

    async def endpoint(request: Request) -> Response:
        db = await request.exit_stack.enter_async_context(session())

        async def rows() -> AsyncIterator[bytes]:
            for index in range(3):
                events.append(f"row {index} from {db}")
                yield b"row\n"

        request.nursery.start_soon(child)
        return StreamingResponse(
            rows(), background=BackgroundTask(lambda: events.append("background"))
        )

    app = App(routes=[Route("/", endpoint)], middleware=[Middleware(RecordResponseEnd, events)])
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            assert (await client.get("/")).text == "row\n" * 3
            await client.wait_idle()
    rows = [f"row {index} from session" for index in range(3)]
    assert events == [
        "session opened",
        *rows,
        "response sent",
        "child done",
        "session closed",
        "background",
    ]


async def test_exit_stack_closes_when_the_handler_fails_or_is_cancelled() -> None:
    waiting = trio.Event()
    closed: list[str] = []

    async def fails(request: Request) -> Response:
        request.exit_stack.callback(closed.append, "after failure")
        raise KeyError("broken")

    async def waits(request: Request) -> Response:
        request.exit_stack.callback(closed.append, "after disconnect")
        waiting.set()
        await trio.sleep_forever()
        raise AssertionError("not reached")

    app = App(routes=[Route("/fails", fails), Route("/waits", waits)])
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app, raise_server_exceptions=False) as client:
            assert (await client.get("/fails")).status_code == 500
            await leave_when(client, waiting, url="/waits")
            await client.wait_idle()
    assert closed == ["after failure", "after disconnect"]


async def test_the_post_response_disconnect_cancels_nothing() -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        async def child() -> None:
            await request.wait_disconnected()  # the server's "response done" disconnect
            await trio.sleep(0.01)
            events.append("child finished")

        request.nursery.start_soon(child)
        request.exit_stack.callback(events.append, "exit stack closed")

        async def background() -> None:
            await trio.sleep(0.01)
            events.append(f"background finished, disconnected: {await request.is_disconnected()}")

        return PlainTextResponse("done", background=BackgroundTask(background))

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "done"
            await client.wait_idle()
    assert events == [
        "child finished",
        "exit stack closed",
        "background finished, disconnected: True",
    ]


async def test_background_tasks_all_run_and_failures_reach_on_task_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []
    reported: list[tuple[str, str]] = []

    async def fails() -> None:
        ran.append("fails")
        raise ValueError("first broke")

    def fails_too() -> None:
        ran.append("fails_too")
        raise KeyError("second broke")

    async def works() -> None:
        ran.append("works")

    async def endpoint(request: Request) -> Response:
        tasks = BackgroundTasks()
        tasks.add_task(fails)
        tasks.add_task(fails_too)
        tasks.add_task(works)
        return PlainTextResponse("ok", background=tasks)

    app = app_with(endpoint, on_task_error=lambda exc, what: reported.append((repr(exc), what)))
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            assert (await client.get("/")).text == "ok"
            await client.wait_idle()
            assert (await client.get("/")).text == "ok"  # and the app still serves
            await client.wait_idle()
    assert ran == ["fails", "fails_too", "works"] * 2
    prefix = "Background task 'test_background_tasks_all_run_and_failures_reach_on_task_error"
    assert reported[:2] == [
        ("ValueError('first broke')", f"{prefix}.<locals>.fails'"),
        ("KeyError('second broke')", f"{prefix}.<locals>.fails_too'"),
    ]
    assert reported[2:] == reported[:2]
    failures = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(failures) == 4
    assert all(record.exc_info is not None for record in failures)


# ----------------------------------------------------------------------------- contextvars


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


class RequestIdMiddleware:
    """Sets ``request_id`` around the app and resets it after, as such middleware does."""

    def __init__(self, app: ASGIApp, wait_first: bool = False) -> None:
        self.app = app
        self.wait_first = wait_first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.wait_first:
            await trio.sleep(0)  # block before setting the variable
        token = request_id.set(scope["path"])
        try:
            await self.app(scope, receive, send)
        finally:
            request_id.reset(token)


@pytest.mark.parametrize("wait_first", [False, True])
async def test_contextvars_set_by_middleware_reach_children_and_background(
    wait_first: bool,
) -> None:
    seen: dict[str, list[str]] = {}

    def note(where: str) -> None:
        seen.setdefault(where, []).append(request_id.get())

    async def endpoint(request: Request) -> Response:
        note("handler")

        async def child(where: str) -> None:
            note(where)

        request.nursery.start_soon(child, "child started at once")
        await trio.sleep(0)
        request.nursery.start_soon(child, "child started later")
        value = await request.nursery.start(started_child)
        note(value)
        return PlainTextResponse("ok", background=BackgroundTask(note, "sync background"))

    async def started_child(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        note("child via start")
        task_status.started("handler after start")

    app = App(
        routes=[Route("/{n}", endpoint)],
        middleware=[Middleware(RequestIdMiddleware, wait_first=wait_first)],
    )
    paths = [f"/{n}" for n in range(20)]  # children may start before or after the companion
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            for path in paths:
                assert (await client.get(path)).text == "ok"
                await client.wait_idle()
    for where, values in seen.items():
        assert values == paths, where
    assert len(seen) == 6


# ----------------------------------------------------------------------------- threads


async def test_thread_limit_caps_concurrent_sync_endpoints_and_background() -> None:
    lock = threading.Lock()
    running = 0
    most = 0

    def busy() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    def endpoint(request: Request) -> Response:
        busy()
        return PlainTextResponse("ok", background=BackgroundTask(busy))

    app = app_with(endpoint, thread_limit=2)  # type: ignore[arg-type]
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            async with trio.open_nursery() as nursery:
                for _ in range(6):
                    nursery.start_soon(client.get, "/")
            await client.wait_idle()
    assert most == 2


# ----------------------------------------------------------------------------- response tracking


async def test_response_tracker_records_the_start() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    tracker = ResponseTracker(send)
    assert not tracker.response_started
    await tracker.send({"type": "http.response.start", "status": 200})
    assert tracker.response_started
    assert sent == [{"type": "http.response.start", "status": 200}]


async def test_the_error_layers_answer_once_a_response_started_outside_an_app() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ValueError("after the start")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(ValueError):
        await ServerErrorMiddleware(app)(scope, receive, send)
    assert [message["type"] for message in sent] == ["http.response.start"]


async def test_the_request_scope_is_in_the_asgi_scope() -> None:
    async def endpoint(request: Request) -> Response:
        request_scope = request.scope[SCOPE_KEY]
        return PlainTextResponse(f"{request_scope.response_started}")

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "False"


async def test_is_disconnected_in_a_background_task_after_the_request() -> None:
    answers: list[bool] = []

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(trio.sleep, 0)  # the request's companion task exists

        async def background() -> None:
            answers.append(await request.is_disconnected())

        return PlainTextResponse("ok", background=BackgroundTask(background))

    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app_with(endpoint)) as client:
            assert (await client.get("/")).text == "ok"
            await client.wait_idle()
    assert len(answers) == 1


@pytest.mark.parametrize("cancel_on_disconnect", [True, False])
async def test_polling_is_disconnected_sees_the_client_leave(cancel_on_disconnect: bool) -> None:
    waiting = trio.Event()
    polls: list[int] = []

    async def endpoint(request: Request) -> Response:
        polls.append(0)
        waiting.set()
        with trio.CancelScope(shield=True):  # shielded, so even the cancelling app lets it see
            while not await request.is_disconnected():
                await trio.sleep(0.001)
        return PlainTextResponse("nobody reads this")

    app = app_with(endpoint, cancel_on_disconnect=cancel_on_disconnect)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            await leave_when(client, waiting)
            await client.wait_idle()
    assert len(polls) == 1  # the handler ran once, and its loop ended


async def test_a_request_leaves_no_reference_cycles_behind() -> None:
    """Cycles would leave every request's objects to the garbage collector (slow, served).

    (A request whose companion task started also leaves trio's own task objects to it.)
    """

    async def endpoint(request: Request) -> Response:
        # Waits (reading the body), inside the cancel scope, without needing the watcher.
        return PlainTextResponse(str(len(await request.body())))

    app = App(routes=[Route("/", endpoint, methods=["POST"])])

    async def one_request() -> None:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"abc", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-length", b"3")],
        }
        await app(scope, receive, send)
        assert sent[-1]["body"] == b"3"

    await one_request()  # builds the middleware stack once
    assert await toolkit_garbage(one_request) == []
