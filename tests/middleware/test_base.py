"""BaseHTTPMiddleware: Starlette's dispatch API, without the pitfalls of Starlette's version.

Each of Starlette's known pitfalls has a test named after it.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio

from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.background import BackgroundTask
from toolkit.middleware import Middleware
from toolkit.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response, StreamingResponse
from toolkit.routing import Route, Router
from toolkit.testclient import AsyncTestClient
from toolkit.types import ASGIApp, Message, Receive, Scope, Send


class SimpleMiddleware(BaseHTTPMiddleware):
    """The seed's example, as written."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["X-Custom-Header"] = "Value"
        return response


async def homepage(request: Request) -> Response:
    return PlainTextResponse("Homepage")


async def test_seed_example_adds_the_header_to_every_response(open_client: OpenClient) -> None:
    app = App(routes=[Route("/", homepage)])
    app.add_middleware(SimpleMiddleware)
    async with open_client(app) as client:
        response = await client.get("/")
        assert response.status_code == 200
        assert response.text == "Homepage"
        assert response.headers["X-Custom-Header"] == "Value"

        not_found = await client.get("/missing")
        assert not_found.status_code == 404
        assert not_found.headers["X-Custom-Header"] == "Value"


async def test_dispatch_can_be_passed_as_an_argument(open_client: OpenClient) -> None:
    async def add_header(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["X-Path"] = request.url.path
        response.status_code = 201
        return response

    app = App(
        routes=[Route("/", homepage)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=add_header)],
    )
    async with open_client(app) as client:
        response = await client.get("/")
    assert response.status_code == 201
    assert response.headers["x-path"] == "/"
    assert response.text == "Homepage"


async def test_dispatch_can_return_its_own_response_without_calling_call_next(
    open_client: OpenClient,
) -> None:
    reached = []

    async def endpoint(request: Request) -> Response:
        reached.append(True)
        return PlainTextResponse("endpoint")

    async def short_circuit(request: Request, call_next: RequestResponseEndpoint) -> Response:
        return PlainTextResponse("from dispatch", status_code=418)

    app = App(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=short_circuit)],
    )
    async with open_client(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (418, "from dispatch")
    assert reached == []


async def test_streaming_responses_stream_through_without_buffering() -> None:
    may_continue = trio.Event()

    async def endpoint(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first "
            await may_continue.wait()  # never set unless the client has seen the first chunk
            yield b"second"

        return StreamingResponse(chunks())

    app = App(routes=[Route("/", endpoint)], middleware=[Middleware(SimpleMiddleware)])
    async with AsyncTestClient(app) as client:
        with trio.fail_after(5):
            async with client.stream("GET", "/") as response:
                assert response.headers["x-custom-header"] == "Value"
                received = []
                async for chunk in response.aiter_raw():
                    received.append(chunk)
                    may_continue.set()
    assert b"".join(received) == b"first second"
    assert received[0] == b"first "


def _recording(app: ASGIApp, events: list[str]) -> ASGIApp:
    """``app`` with every message it sends logged in ``events``, as the server sees them."""

    async def wrapper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def logging_send(message: Message) -> None:
            more = message.get("more_body", False)
            events.append(f"sent {message['type']}{' (more)' if more else ''}")
            await send(message)

        await app(scope, receive, logging_send)

    return wrapper


@pytest.mark.parametrize("with_app", [True, False], ids=["app", "bare-router"])
async def test_background_tasks_run_after_the_response_once(with_app: bool) -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok", background=BackgroundTask(events.append, "background"))

    routes = [Route("/", endpoint)]
    inner: ASGIApp
    if with_app:
        inner = App(routes=routes, middleware=[Middleware(SimpleMiddleware)])
    else:
        inner = SimpleMiddleware(Router(routes))
    async with AsyncTestClient(_recording(inner, events)) as client:
        response = await client.get("/")
        await client.wait_idle()
    assert response.headers["x-custom-header"] == "Value"
    assert events == ["sent http.response.start", "sent http.response.body", "background"]


async def test_background_task_set_in_dispatch_runs_after_the_inner_one() -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok", background=BackgroundTask(events.append, "inner"))

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.background = BackgroundTask(events.append, "dispatch")
        return response

    app = App(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )
    async with AsyncTestClient(_recording(app, events)) as client:
        await client.get("/")
        await client.wait_idle()
    assert events == ["sent http.response.start", "sent http.response.body", "inner", "dispatch"]


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


async def test_contextvars_set_in_dispatch_reach_the_handler(open_client: OpenClient) -> None:
    seen_by_dispatch_after: list[str] = []

    async def endpoint(request: Request) -> Response:
        seen = request_id.get()
        request_id.set("set by handler")
        return PlainTextResponse(seen)

    async def sync_endpoint(request: Request) -> Response:
        return PlainTextResponse(request_id.get())

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        request_id.set("abc123")
        response = await call_next(request)
        seen_by_dispatch_after.append(request_id.get())
        return response

    app = App(
        routes=[Route("/", endpoint), Route("/sync", sync_endpoint)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )
    async with open_client(app) as client:
        assert (await client.get("/")).text == "abc123"
        assert (await client.get("/sync")).text == "abc123"
    # Same task, same context: the handler's changes are visible to dispatch too.
    assert seen_by_dispatch_after[0] == "set by handler"


async def test_client_disconnect_cancels_the_inner_handler() -> None:
    handler_started = trio.Event()
    outcome: list[str] = []

    async def endpoint(request: Request) -> Response:
        handler_started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            outcome.append("handler cancelled")
            raise
        return PlainTextResponse("unreachable")  # pragma: no cover

    app = App(routes=[Route("/", endpoint)], middleware=[Middleware(SimpleMiddleware)])
    async with AsyncTestClient(app) as client:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:

                async def request_then_leave() -> None:
                    with trio.CancelScope() as leave:
                        nursery.start_soon(lambda: _cancel_when(handler_started, leave))
                        await client.get("/")

                nursery.start_soon(request_then_leave)
            await client.wait_idle()
    assert outcome == ["handler cancelled"]


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def test_handler_sees_http_disconnect_through_the_middleware() -> None:
    """Starlette fakes or hides http.disconnect behind its middleware; here the app sees it."""
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())  # the body message
        await PlainTextResponse("done")(scope, receive, send)
        seen.append(await receive())  # the server's disconnect, after the response

    async with AsyncTestClient(SimpleMiddleware(app), lifespan=False) as client:
        response = await client.get("/")
        await client.wait_idle()
    assert response.headers["x-custom-header"] == "Value"
    assert [message["type"] for message in seen] == ["http.request", "http.disconnect"]


class CustomError(Exception):
    pass


async def test_exception_in_endpoint_reaches_the_exception_handlers_exactly_once(
    open_client: OpenClient,
) -> None:
    handled: list[str] = []

    async def custom_handler(request: Request, exc: Exception) -> Response:
        handled.append("custom")
        return PlainTextResponse("custom handled", status_code=409)

    async def server_error_handler(request: Request, exc: Exception) -> Response:
        handled.append("500")
        return PlainTextResponse("server error handled", status_code=500)

    async def custom(request: Request) -> Response:
        raise CustomError()

    async def crash(request: Request) -> Response:
        raise ValueError("boom")

    app = App(
        routes=[Route("/custom", custom), Route("/crash", crash)],
        middleware=[Middleware(SimpleMiddleware)],
        exception_handlers={CustomError: custom_handler, 500: server_error_handler},
    )
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/custom")
        assert (response.status_code, response.text) == (409, "custom handled")
        assert response.headers["x-custom-header"] == "Value"
        assert handled == ["custom"]

        response = await client.get("/crash")
        assert (response.status_code, response.text) == (500, "server error handled")
        assert handled == ["custom", "500"]


async def test_exception_in_endpoint_is_raised_once_to_the_server() -> None:
    raised: list[BaseException] = []

    async def crash(request: Request) -> Response:
        raise ValueError("boom")

    app = App(routes=[Route("/", crash)], middleware=[Middleware(SimpleMiddleware)])

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            raised.append(exc)
            raise

    async with AsyncTestClient(server) as client:
        with pytest.raises(ValueError, match="boom"):
            response = await client.get("/")
            assert response.status_code == 500
            await client.wait_idle()
    assert len(raised) == 1
    assert isinstance(raised[0], ValueError)


async def test_dispatch_can_catch_the_endpoint_exception(open_client: OpenClient) -> None:
    async def crash(request: Request) -> Response:
        raise ValueError("boom")

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        try:
            return await call_next(request)
        except ValueError as exc:
            return PlainTextResponse(f"caught {exc}", status_code=503)

    app = App(
        routes=[Route("/", crash)], middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)]
    )
    async with open_client(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (503, "caught boom")


async def test_exception_mid_stream_propagates_once() -> None:
    async def endpoint(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"partial"
            raise ValueError("mid-stream")

        return StreamingResponse(chunks())

    app = App(routes=[Route("/", endpoint)], middleware=[Middleware(SimpleMiddleware)])
    async with AsyncTestClient(app) as client:
        with pytest.raises(ValueError, match="mid-stream"):
            await client.get("/")


async def test_request_body_can_be_read_in_dispatch_and_again_by_the_endpoint(
    open_client: OpenClient,
) -> None:
    async def echo(request: Request) -> Response:
        return PlainTextResponse(await request.body())

    async def echo_stream(request: Request) -> Response:
        return PlainTextResponse(b"".join([chunk async for chunk in request.stream()]))

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        body = await request.body()
        response = await call_next(request)
        response.headers["X-Body-Length"] = str(len(body))
        return response

    app = App(
        routes=[
            Route("/", echo, methods=["POST"]),
            Route("/stream", echo_stream, methods=["POST"]),
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )

    async with open_client(app) as client:
        response = await client.post("/", content=b"hello body")
        assert (response.text, response.headers["x-body-length"]) == ("hello body", "10")
        response = await client.post("/stream", content=b"streamed")
        assert response.text == "streamed"


async def test_body_partly_streamed_in_dispatch_is_replayed_then_continued() -> None:
    async def echo(request: Request) -> Response:
        return PlainTextResponse(await request.body())

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        async for chunk in request.stream():
            assert chunk == b"first"
            break
        return await call_next(request)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first"
        yield b"second"

    app = App(
        routes=[Route("/", echo, methods=["POST"])],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )
    async with AsyncTestClient(app) as client:
        response = await client.post("/", content=chunks())
    assert response.text == "firstsecond"


async def test_dispatch_can_read_and_replace_the_body(open_client: OpenClient) -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return StreamingResponse(chunks(), background=BackgroundTask(events.append, "background"))

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        body = b"".join([chunk async for chunk in response.body_iterator])
        events.append("body read")
        return PlainTextResponse(body.upper(), status_code=response.status_code)

    app = App(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )
    async with open_client(app) as client:
        response = await client.get("/")
        assert response.text == "AB"
        assert response.headers["content-length"] == "2"
    # The body was fully produced, so the app ran to its end: its background task too.
    assert events == ["body read", "background"]


async def test_a_discarded_response_is_closed_and_its_background_does_not_run() -> None:
    events: list[str] = []

    async def endpoint(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"forever"
            finally:
                events.append("stream closed")

        return StreamingResponse(chunks(), background=BackgroundTask(events.append, "background"))

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        return PlainTextResponse("replaced")

    app = App(
        routes=[Route("/", endpoint)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )
    async with AsyncTestClient(app) as client:
        with trio.fail_after(5):
            response = await client.get("/")
            await client.wait_idle()
    assert response.text == "replaced"
    assert "background" not in events


async def test_call_next_twice_is_an_error() -> None:
    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        return await call_next(request)

    app = App(
        routes=[Route("/", homepage)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )
    async with AsyncTestClient(app) as client:
        with pytest.raises(RuntimeError, match="only be called once"):
            assert (await client.get("/")).status_code == 500
            await client.wait_idle()


async def test_app_without_a_response_is_an_error() -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    async with AsyncTestClient(SimpleMiddleware(silent), lifespan=False) as client:
        with pytest.raises(RuntimeError, match="No response returned"):
            await client.get("/")


async def test_app_sending_from_another_task_gets_a_clear_error() -> None:
    async def sends_from_child(scope: Scope, receive: Receive, send: Send) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(PlainTextResponse("x"), scope, receive, send)

    async with AsyncTestClient(SimpleMiddleware(sends_from_child), lifespan=False) as client:
        with pytest.raises(RuntimeError, match="from another task"):
            await client.get("/")


async def test_timeout_around_call_next_bounds_the_time_to_headers(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def slow(request: Request) -> Response:
        await trio.sleep(60)
        return PlainTextResponse("late")  # pragma: no cover

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        with trio.move_on_after(1):
            return await call_next(request)
        return PlainTextResponse("too slow", status_code=504)

    app = App(
        routes=[Route("/", slow), Route("/fast", homepage)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )
    async with AsyncTestClient(app) as client:
        response = await client.get("/")
        assert (response.status_code, response.text) == (504, "too slow")
        assert (await client.get("/fast")).text == "Homepage"


async def test_cancel_scope_around_call_next_with_an_app_holding_its_own_is_a_clear_error() -> None:
    async def holds_a_scope(scope: Scope, receive: Receive, send: Send) -> None:
        with trio.CancelScope():
            await PlainTextResponse("x")(scope, receive, send)

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        with trio.move_on_after(10):
            return await call_next(request)
        raise AssertionError("unreachable")  # pragma: no cover

    app = BaseHTTPMiddleware(holds_a_scope, dispatch=dispatch)
    async with AsyncTestClient(app, lifespan=False) as client:
        with pytest.raises(RuntimeError, match="cannot interleave"):
            await client.get("/")


async def test_error_in_dispatch_after_call_next_unwinds_the_app_first() -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"unsent"})
        finally:
            events.append("app unwound")

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        await call_next(request)
        events.append("dispatch fails")
        raise KeyError("dispatch bug")

    middleware = BaseHTTPMiddleware(app, dispatch=dispatch)
    async with AsyncTestClient(middleware, lifespan=False) as client:
        with pytest.raises(KeyError, match="dispatch bug"):
            await client.get("/")
    assert events == ["dispatch fails", "app unwound"]


async def test_app_cancel_scope_firing_while_the_middleware_sends_ends_the_response_cleanly(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The app's own deadline may expire while its chunk is being sent on (a slow client):
    the cancellation reaches the app at its send, and what it sends next still goes out."""

    async def ticking(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with trio.move_on_after(1):
            while True:
                await send({"type": "http.response.body", "body": b"tick;", "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    async with AsyncTestClient(SimpleMiddleware(ticking), lifespan=False) as client:
        async with client.stream("GET", "/") as response:
            chunks = response.aiter_raw()
            assert await anext(chunks) == b"tick;"
            await trio.sleep(5)  # a slow client: the app's deadline passes mid-send
            rest = b"".join([chunk async for chunk in chunks])
        await client.wait_idle()
    assert response.headers["x-custom-header"] == "Value"
    assert rest.endswith(b"end")
    assert set(rest.removesuffix(b"end").split(b";")) <= {b"tick", b""}


async def test_nested_middlewares_each_see_the_response() -> None:
    def tagging(tag: str) -> Any:
        async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
            response = await call_next(request)
            response.headers.append("x-order", tag)
            return response

        return dispatch

    async def endpoint(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a"
            await trio.sleep(0)
            yield b"b"

        return StreamingResponse(chunks())

    app = App(
        routes=[Route("/", endpoint)],
        middleware=[
            Middleware(BaseHTTPMiddleware, dispatch=tagging("outer")),
            Middleware(BaseHTTPMiddleware, dispatch=tagging("inner")),
        ],
    )
    async with AsyncTestClient(app) as client:
        response = await client.get("/")
    assert response.text == "ab"
    assert response.headers.get_list("x-order") == ["inner", "outer"]


async def scopes_reaching_app(wrap: Callable[[ASGIApp], ASGIApp], scope: Scope) -> list[Scope]:
    """The scopes an app wrapped by ``wrap`` is called with, for one call with ``scope``
    (whose ``receive`` and ``send`` must not be used)."""
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    await wrap(app)(scope, _no_receive, _no_send)
    return seen


async def _no_receive() -> Message:
    raise AssertionError("not called")  # pragma: no cover


async def _no_send(message: Message) -> None:
    raise AssertionError("not called")  # pragma: no cover


async def test_websocket_and_lifespan_scopes_pass_through() -> None:
    for scope_type in ("websocket", "lifespan"):
        scope = {"type": scope_type}
        assert await scopes_reaching_app(SimpleMiddleware, scope) == [scope]


async def test_dispatch_must_be_implemented() -> None:
    async with AsyncTestClient(BaseHTTPMiddleware(Router([Route("/", homepage)]))) as client:
        with pytest.raises(NotImplementedError):
            await client.get("/")
