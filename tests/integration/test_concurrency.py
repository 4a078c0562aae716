"""Structured concurrency through the real hypercorn trio server on 127.0.0.1.

Every test serves its own App with ``serving()``: hypercorn on a free port, in
the test's trio run (so handlers and the test share events), shut down
gracefully at the end of the block, after which no toolkit task (nor one of
this module's) may be left alive. Clients are real: httpx, or raw trio
sockets where a test must control exactly when bytes are sent or the
connection closed. Everything is bounded in time; a handler's clean-up after
a disconnect must run within a second.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from toolkit.applications import App
from toolkit.background import BackgroundTask
from toolkit.exceptions import HTTPException
from toolkit.middleware import Middleware
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response, StreamingResponse
from toolkit.routing import Route
from toolkit.testing.leaks import TaskLeakChecker
from toolkit.testing.live import LiveServer, live_server
from toolkit.types import ASGIApp, Receive, Scope, Send

#: The budget for a whole test, server start and graceful stop included.
TIME_LIMIT = 5
#: How soon a handler must have seen its client leave (the issue's acceptance bound).
CLEANUP_LIMIT = 1


@asynccontextmanager
async def serving(app: ASGIApp, **hypercorn_options: Any) -> AsyncIterator[LiveServer]:
    """Serve ``app``; after the graceful stop, fail if a toolkit or test task is still alive."""
    async with (
        TaskLeakChecker(modules=[__name__]),
        live_server(app, **hypercorn_options) as server,
    ):
        yield server


async def connect(server: LiveServer) -> trio.SocketStream:
    return await trio.open_tcp_stream(server.host, server.port)


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


class Probe:
    """What a handler did, for the test to wait on: named events and a log."""

    def __init__(self) -> None:
        self.events: dict[str, trio.Event] = {}
        self.log: list[str] = []

    def __getitem__(self, name: str) -> trio.Event:
        return self.events.setdefault(name, trio.Event())

    def note(self, name: str) -> None:
        self.log.append(name)
        self[name].set()


@pytest.fixture
def probe() -> Probe:
    return Probe()


# ----------------------------------------------------------------------------- cancel on disconnect


class PassThrough:
    """A pure ASGI middleware that changes nothing (the handler is wrapped)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "middleware"])
async def test_a_client_leaving_mid_request_cancels_the_handler_and_its_children(
    probe: Probe, wrapped: bool
) -> None:
    async def child() -> None:
        try:
            await trio.sleep_forever()
        finally:
            probe.note("child finally")

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(child)
        try:
            probe.note("handler waiting")
            await trio.sleep_forever()
        finally:
            probe.note("handler finally")
        raise AssertionError("not reached")

    middleware = [Middleware(PassThrough)] if wrapped else []
    app = App(routes=[Route("/", endpoint)], middleware=middleware)
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server:
            stream = await connect(server)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            await probe["handler waiting"].wait()
            await stream.aclose()
            with trio.fail_after(CLEANUP_LIMIT):
                await probe["handler finally"].wait()
                await probe["child finally"].wait()


@pytest.mark.parametrize("handler_waits_on", ["the body", "something else"])
async def test_a_client_leaving_with_its_body_half_sent_cancels_the_handler(
    probe: Probe, handler_waits_on: str
) -> None:
    async def endpoint(request: Request) -> Response:
        try:
            chunks = request.stream()
            first = await anext(chunks)
            probe.note(f"read {first!r}")
            if handler_waits_on == "the body":
                await anext(chunks)
            else:
                await trio.sleep_forever()
        finally:
            probe.note("handler finally")
        raise AssertionError("not reached")

    app = App(routes=[Route("/", endpoint, methods=["POST"])])
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server:
            stream = await connect(server)
            await stream.send_all(
                b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\nfirst part"
            )
            await probe["read b'first part'"].wait()
            await stream.send_all(b"x" * 5000)  # more of the body, unread by the handler
            await stream.aclose()
            with trio.fail_after(CLEANUP_LIMIT):
                await probe["handler finally"].wait()


@pytest.mark.parametrize("generator_waits", [True, False], ids=["waits", "never-waits"])
async def test_a_client_leaving_a_stream_stops_the_generator(
    probe: Probe, generator_waits: bool
) -> None:
    async def endpoint(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"tick\n" * 100
                    if generator_waits:
                        await trio.sleep(0.001)
            finally:
                probe.note("generator finally")

        return StreamingResponse(chunks(), media_type="text/plain")

    app = App(routes=[Route("/", endpoint)])
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server:
            stream = await connect(server)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            received = 0
            while received < 10_000:
                received += len(await stream.receive_some())
            await stream.aclose()
            with trio.fail_after(CLEANUP_LIMIT):
                await probe["generator finally"].wait()


@pytest.mark.parametrize("opt_out", ["app", "route"])
async def test_with_cancel_on_disconnect_off_the_handler_finishes(
    probe: Probe, opt_out: str
) -> None:
    async def endpoint(request: Request) -> Response:
        probe.note("handler waiting")
        await request.wait_disconnected()
        probe.note("saw the disconnect")
        await trio.sleep(0.05)  # must-finish work, after the client left
        probe.note(f"finished, disconnected: {await request.is_disconnected()}")
        return PlainTextResponse("nobody reads this")

    if opt_out == "app":
        app = App(routes=[Route("/", endpoint)], cancel_on_disconnect=False)
    else:
        app = App(routes=[Route("/", endpoint, cancel_on_disconnect=False)])
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server:
            stream = await connect(server)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            await probe["handler waiting"].wait()
            await stream.aclose()
            await probe["finished, disconnected: True"].wait()
    assert probe.log == ["handler waiting", "saw the disconnect", "finished, disconnected: True"]


async def test_a_half_closing_client_gets_its_response_from_a_route_that_opts_out() -> None:
    # hypercorn reports a client that shuts down its sending side as disconnected, though it
    # still reads: the reason a route can turn cancel-on-disconnect off.
    async def endpoint(request: Request) -> Response:
        await trio.sleep(0.05)
        return PlainTextResponse("still delivered")

    app = App(
        routes=[
            Route("/cancelled", endpoint),
            Route("/finishes", endpoint, cancel_on_disconnect=False),
        ]
    )
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server:
            answers = {}
            for path in ("/cancelled", "/finishes"):
                stream = await connect(server)
                await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
                stream.socket.shutdown(socket.SHUT_WR)
                answers[path] = await read_until_closed(stream)
                await stream.aclose()
    assert b"still delivered" not in answers["/cancelled"]
    assert answers["/finishes"].startswith(b"HTTP/1.1 200 ")
    assert answers["/finishes"].endswith(b"still delivered")


async def test_a_failing_child_fails_the_request_like_the_handler_would(probe: Probe) -> None:
    async def child() -> None:
        await trio.sleep(0.01)
        raise LookupError("child broke")

    async def endpoint(request: Request) -> Response:
        request.nursery.start_soon(child)
        try:
            await trio.sleep(10)
        finally:
            probe.note("handler finally")
        raise AssertionError("not reached")

    async def on_lookup_error(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"handled: {exc}", status_code=409)

    plain = App(routes=[Route("/", endpoint)])
    handled = App(routes=[Route("/", endpoint)], exception_handlers={LookupError: on_lookup_error})
    with trio.fail_after(TIME_LIMIT):
        async with serving(plain) as server, httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/")
            assert (response.status_code, response.text) == (500, "Internal Server Error")
        async with serving(handled) as server, httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/")
            assert (response.status_code, response.text) == (409, "handled: child broke")
    assert probe.log == ["handler finally"] * 2


# ----------------------------------------------------------------------------- deadlines


async def test_a_slow_handler_gets_504_and_a_registered_handler_changes_it(
    probe: Probe,
) -> None:
    async def slow(request: Request) -> Response:
        try:
            await trio.sleep(10)
        finally:
            probe.note(f"{request.url.path} cancelled")
        raise AssertionError("not reached")

    async def fast(request: Request) -> Response:
        return PlainTextResponse("fast")

    async def on_timeout(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return PlainTextResponse("custom deadline page", status_code=exc.status_code)

    plain = App(routes=[Route("/slow", slow), Route("/fast", fast)], request_timeout=0.1)
    custom = App(routes=[Route("/slow", slow, timeout=0.1)], exception_handlers={504: on_timeout})
    with trio.fail_after(TIME_LIMIT):
        async with serving(plain) as server, httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/slow")
            assert (response.status_code, response.text) == (504, "Gateway Timeout")
            assert (await client.get("/fast")).text == "fast"
        async with serving(custom) as server, httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/slow")
            assert (response.status_code, response.text) == (504, "custom deadline page")
    assert probe.log == ["/slow cancelled", "/slow cancelled"]


async def test_a_slow_stream_ends_cleanly_at_its_deadline(
    probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    async def endpoint(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"first part;"
                await trio.sleep(10)
                yield b"never"
            finally:
                probe.note("generator finally")

        return StreamingResponse(chunks(), media_type="text/plain")

    app = App(routes=[Route("/", endpoint, timeout=0.1)])
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/")  # a clean chunked end: httpx raises on a torn one
            assert (response.status_code, response.text) == (200, "first part;")
            assert (await client.get("/")).text == "first part;"  # same connection, reused
    assert probe.log == ["generator finally"] * 2
    assert "Deadline passed while streaming GET /" in caplog.text


# ----------------------------------------------------------------------------- after the response


async def test_background_runs_after_the_whole_response_and_failures_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client_has_response = trio.Event()
    reported: list[str] = []
    done = trio.Event()

    async def after_response() -> None:
        # Waits for the test to have read the whole body: if background work ran before the
        # last byte were sent, the client would never get it, and the test would time out.
        await client_has_response.wait()
        raise ValueError("background broke")

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("x" * 100_000, background=BackgroundTask(after_response))

    async def hello(request: Request) -> Response:
        return PlainTextResponse("still serving")

    def on_task_error(exc: BaseException, description: str) -> None:
        reported.append(f"{description}: {exc}")
        done.set()

    app = App(routes=[Route("/", endpoint), Route("/hello", hello)], on_task_error=on_task_error)
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/")
            assert len(response.content) == 100_000
            client_has_response.set()
            await done.wait()
            assert (await client.get("/hello")).text == "still serving"
    name = "test_background_runs_after_the_whole_response_and_failures_are_reported"
    assert reported == [f"Background task '{name}.<locals>.after_response': background broke"]
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == f"Background task '{name}.<locals>.after_response' failed"
    assert record.exc_info is not None


async def test_the_post_response_disconnect_cancels_nothing(probe: Probe) -> None:
    async def endpoint(request: Request) -> Response:
        async def child() -> None:
            await request.wait_disconnected()  # hypercorn's "response complete" disconnect
            await trio.sleep(0.02)
            probe.note("child finished")

        async def background() -> None:
            await trio.sleep(0.02)
            probe.note("background finished")

        request.nursery.start_soon(child)
        request.exit_stack.callback(probe.note, "exit stack closed")
        return PlainTextResponse("done", background=BackgroundTask(background))

    app = App(routes=[Route("/", endpoint)])
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/")).text == "done"
            await probe["background finished"].wait()
    assert probe.log == ["child finished", "exit stack closed", "background finished"]


# ------------------------------------------------------------------------- app tasks at shutdown


async def test_app_tasks_finish_within_shutdown_timeout_and_are_cancelled_after(
    probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    async def job(seconds: float) -> None:
        try:
            await trio.sleep(seconds)
            probe.note(f"{seconds}s job finished")
        except trio.Cancelled:
            probe.note(f"{seconds}s job cancelled")
            raise

    async def endpoint(request: Request) -> Response:
        request.app.start_soon(job, 0.1, name="quick job")
        request.app.start_soon(job, 30, name="endless job")
        return PlainTextResponse("started")

    app = App(routes=[Route("/", endpoint)], shutdown_timeout=0.3)
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/")).text == "started"
            stop = trio.current_time()
        elapsed = trio.current_time() - stop
    assert sorted(probe.log) == ["0.1s job finished", "30s job cancelled"]
    assert 0.3 <= elapsed < 1
    assert "cancelling 1 app task(s) still running after 0.3s: endless job" in caplog.text


# ----------------------------------------------------------------------------- body limits


async def test_bodies_over_the_limit_are_413_and_the_server_keeps_serving(probe: Probe) -> None:
    async def upload(request: Request) -> Response:
        probe.note("upload called")
        return PlainTextResponse(f"{len(await request.body())} bytes")

    async def chunked(size: int) -> AsyncIterator[bytes]:
        for _ in range(size // 1000):
            yield b"x" * 1000

    app = App(
        routes=[
            Route("/upload", upload, methods=["POST"]),
            Route("/small", upload, methods=["POST"], max_body_size=10),
        ],
        max_body_size=5000,
    )
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            with_length = await client.post("/upload", content=b"x" * 6000)
            without_length = await client.post("/upload", content=chunked(6000))
            assert "content-length" not in without_length.request.headers
            within = await client.post("/upload", content=chunked(5000))
            route_limit = await client.post("/small", content=b"x" * 11)
    assert with_length.status_code == without_length.status_code == 413
    assert with_length.text == "The request body is larger than 5000 bytes."
    assert (within.status_code, within.text) == (200, "5000 bytes")
    # A route's limit checks the declared length before its handler is ever called.
    assert (route_limit.status_code, route_limit.text) == (
        413,
        "The request body is larger than 10 bytes.",
    )
    assert probe.log == ["upload called"] * 3


async def test_a_slow_body_is_408(probe: Probe) -> None:
    async def upload(request: Request) -> Response:
        try:
            return PlainTextResponse(f"{len(await request.body())} bytes")
        finally:
            probe.note("upload finished")

    app = App(routes=[Route("/", upload, methods=["POST"])], body_timeout=0.2)
    with trio.fail_after(TIME_LIMIT):
        async with serving(app) as server:
            stream = await connect(server)
            await stream.send_all(
                b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nonly this"
            )
            answer = await read_until_closed(stream)  # the server closes: the body is unread
            await stream.aclose()
            async with httpx.AsyncClient(base_url=server.url) as client:
                assert (await client.post("/", content=b"in time")).text == "7 bytes"
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b"The request body arrived too slowly.")
