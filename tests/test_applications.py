from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.exceptions import HTTPException
from toolkit.middleware import Middleware
from toolkit.requests import Request
from toolkit.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from toolkit.routing import Host, Mount, NoMatchFound, Route, Router
from toolkit.types import ASGIApp, Message, Receive, Scope, Send


async def ok(request: Request) -> Response:
    return PlainTextResponse("ok")


def raises(exc: Exception) -> Any:
    """An endpoint raising ``exc``."""

    async def endpoint(request: Request) -> Response:
        raise exc

    return endpoint


class Trace:
    """A pure ASGI middleware noting ``label`` in a shared list when a request passes through."""

    def __init__(self, app: ASGIApp, label: str, calls: list[str]) -> None:
        self.app = app
        self.label = label
        self.calls = calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls.append(self.label)
        await self.app(scope, receive, send)


# ----------------------------------------------------------------------------- routes and app API


async def test_routes_and_app_level_registration(open_client: OpenClient) -> None:
    app = App(routes=[Route("/", ok, name="home")])
    app.add_route("/added", ok, name="added", methods=["POST"])
    app.mount("/sub", Router([Route("/page", ok, name="page")]), name="sub")
    app.host("api.example.org", Router([Route("/", ok, name="root")]), name="api")
    assert [type(route) for route in app.routes] == [Route, Route, Mount, Host]
    assert app.url_path_for("home") == "/"
    assert app.url_path_for("added") == "/added"
    assert app.url_path_for("sub:page") == "/sub/page"
    assert app.url_path_for("api:root").host == "api.example.org"
    with pytest.raises(NoMatchFound):
        app.url_path_for("nope")
    async with open_client(app) as client:
        assert (await client.get("/")).text == "ok"
        assert (await client.post("/added")).text == "ok"
        assert (await client.get("/sub/page")).text == "ok"


def test_state_is_an_attribute_bag() -> None:
    app = App()
    app.state.counter = 1
    assert app.state.counter == 1
    with pytest.raises(AttributeError):
        _ = app.state.missing


# ----------------------------------------------------------------------------- middleware


async def test_middleware_order(open_client: OpenClient) -> None:
    calls: list[str] = []
    app = App(
        routes=[Route("/", ok)],
        middleware=[
            Middleware(Trace, label="listed first", calls=calls),
            Middleware(Trace, label="listed second", calls=calls),
        ],
    )
    app.add_middleware(Trace, label="added first", calls=calls)
    app.add_middleware(Trace, label="added last", calls=calls)
    async with open_client(app) as client:
        await client.get("/")
    assert calls == ["added last", "added first", "listed first", "listed second"]


async def test_add_middleware_after_start_raises(open_client: OpenClient) -> None:
    app = App(routes=[Route("/", ok)])
    async with open_client(app) as client:
        await client.get("/")
    with pytest.raises(RuntimeError, match="after an application has started"):
        app.add_middleware(Trace, label="late", calls=[])
    with pytest.raises(RuntimeError, match="after an application has started"):
        app.add_exception_handler(404, ok)


async def test_middleware_sees_errors_answered_by_handlers(open_client: OpenClient) -> None:
    # User middleware sits outside the exceptions layer: it sees the 404 response, not the error.
    statuses: list[int] = []

    class RecordStatus:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])
                await send(message)

            await self.app(scope, receive, record)

    app = App(routes=[Route("/", ok)], middleware=[Middleware(RecordStatus)])
    async with open_client(app) as client:
        await client.get("/missing")
    assert statuses == [404]


# ----------------------------------------------------------------------------- exception handlers


class AppError(Exception):
    pass


class SpecificError(AppError):
    pass


async def test_exception_handlers_by_status_code_and_class(open_client: OpenClient) -> None:
    def answer(label: str) -> Any:
        async def handler(request: Request, exc: Exception) -> Response:
            return PlainTextResponse(f"{label}: {exc!r}", status_code=418)

        return handler

    def sync_handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("sync handler", status_code=409)

    app = App(
        routes=[
            Route("/base", raises(AppError("a"))),
            Route("/specific", raises(SpecificError("b"))),
            Route("/lookup", raises(KeyError("k"))),
            Route("/forbidden", raises(HTTPException(403))),
            Route("/teapot", raises(HTTPException(418, "short and stout"))),
            Route("/conflict", raises(HTTPException(409))),
        ],
        exception_handlers={
            AppError: answer("app"),
            SpecificError: answer("specific"),
            LookupError: answer("lookup"),
            404: answer("not found"),
            HTTPException: answer("http"),
            409: sync_handler,
        },
    )
    async with open_client(app) as client:
        assert (await client.get("/base")).text == "app: AppError('a')"
        assert (await client.get("/specific")).text == "specific: SpecificError('b')"
        assert (await client.get("/lookup")).text == "lookup: KeyError('k')"
        # A status code handler wins over a class handler for the same HTTPException.
        response = await client.get("/nowhere")
        assert response.text == "not found: HTTPException(status_code=404, detail='Not Found')"
        assert (await client.get("/forbidden")).text.startswith(
            "http: HTTPException(status_code=403"
        )
        assert (await client.get("/conflict")).text == "sync handler"


async def test_http_exception_default_answer(open_client: OpenClient) -> None:
    app = App(
        routes=[
            Route("/teapot", raises(HTTPException(418, "short", headers={"x-tea": "yes"}))),
            Route("/unmodified", raises(HTTPException(304))),
        ]
    )
    async with open_client(app) as client:
        response = await client.get("/teapot")
        assert (response.status_code, response.text) == (418, "short")
        assert response.headers["x-tea"] == "yes"
        response = await client.get("/unmodified")
        assert (response.status_code, response.content) == (304, b"")


@pytest.mark.parametrize("key", [500, Exception])
async def test_handler_for_server_errors(open_client: OpenClient, key: Any) -> None:
    seen: list[Exception] = []

    async def handler(request: Request, exc: Exception) -> Response:
        seen.append(exc)
        return JSONResponse({"error": str(exc), "path": request.url.path}, status_code=500)

    app = App(routes=[Route("/", raises(RuntimeError("boom")))], exception_handlers={key: handler})
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/")
    assert response.status_code == 500
    assert response.json() == {"error": "boom", "path": "/"}
    assert [type(exc) for exc in seen] == [RuntimeError]


async def test_server_error_reaches_the_test_client(open_client: OpenClient) -> None:
    # The sync client raises it from the request (as Starlette's does); the async client, whose
    # request returns once the 500 is sent, from wait_idle() or from leaving the client.
    app = App(routes=[Route("/", raises(RuntimeError("boom")))])
    with pytest.raises(RuntimeError, match="boom"):
        async with open_client(app) as client:
            await client.get("/")


async def test_production_500_reveals_nothing(open_client: OpenClient) -> None:
    app = App(routes=[Route("/", raises(RuntimeError("secret detail")))])
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/", headers={"accept": "text/html"})
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert response.headers["content-type"].startswith("text/plain")


async def test_debug_traceback_as_html_and_as_text(open_client: OpenClient) -> None:
    app = App(debug=True, routes=[Route("/", raises(RuntimeError("<boom>")))])
    async with open_client(app, raise_server_exceptions=False) as client:
        html_page = await client.get("/", headers={"accept": "text/html,*/*"})
        text_page = await client.get("/")
    assert html_page.status_code == 500
    assert html_page.headers["content-type"].startswith("text/html")
    assert "<!DOCTYPE html>" in html_page.text
    assert "RuntimeError: &lt;boom&gt;" in html_page.text  # escaped, never raw HTML
    assert "<boom>" not in html_page.text
    assert "raise exc" in html_page.text  # the source line of the failing frame
    assert text_page.status_code == 500
    assert text_page.headers["content-type"].startswith("text/plain")
    assert text_page.text.startswith("Traceback (most recent call last):")
    assert text_page.text.rstrip().endswith("RuntimeError: <boom>")


async def test_debug_ignores_a_server_error_handler(open_client: OpenClient) -> None:
    # As in Starlette: with debug=True, the traceback page wins over a 500 handler.
    async def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("handled", status_code=500)

    app = App(
        debug=True,
        routes=[Route("/", raises(RuntimeError("boom")))],
        exception_handlers={500: handler},
    )
    async with open_client(app, raise_server_exceptions=False) as client:
        assert "Traceback" in (await client.get("/")).text


async def failing_stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first chunk"
        raise RuntimeError("mid-stream")

    return StreamingResponse(chunks(), media_type="text/plain")


async def failing_handled(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first chunk"
        raise AppError("mid-stream, with a handler")

    return StreamingResponse(chunks(), media_type="text/plain")


async def error_handler(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("handled", status_code=500)


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/plain", "/handled"])
async def test_error_after_response_started_sends_no_second_response(
    debug: bool, path: str
) -> None:
    app = App(
        debug=debug,
        routes=[Route("/plain", failing_stream), Route("/handled", failing_handled)],
        exception_handlers={AppError: error_handler, 500: error_handler},
    )
    messages: list[Message] = []

    async def receive() -> Message:
        await trio.sleep_forever()
        raise AssertionError  # unreachable

    async def send(message: Message) -> None:
        messages.append(message)

    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "scheme": "http",
        "server": ("testserver", 80),
    }
    with pytest.raises(Exception) as raised:
        await app(scope, receive, send)
    assert "mid-stream" in repr(raised.value) + repr(raised.value.__cause__)
    starts = [message for message in messages if message["type"] == "http.response.start"]
    assert [start["status"] for start in starts] == [200]
    bodies = b"".join(message.get("body", b"") for message in messages[1:])
    assert bodies == b"first chunk"


async def test_error_after_response_started_through_clients(open_client: OpenClient) -> None:
    app = App(routes=[Route("/", failing_stream)])
    # A real client sees the body cut short, never a second response...
    async with open_client(app, raise_server_exceptions=False) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/")
    # ...and a test client raising app errors raises the app's error.
    with pytest.raises(RuntimeError, match="mid-stream"):
        async with open_client(app) as client:
            await client.get("/")


# ----------------------------------------------------------------------------- lifespan and state


async def test_lifespan_runs_around_requests_and_its_state_reaches_requests(
    open_client: OpenClient,
) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"db": "connection", "shared": []}
        events.append("shutdown")

    async def endpoint(request: Request) -> Response:
        events.append("request")
        request.state.shared.append(request.url.path)
        request.state.per_request = True
        return JSONResponse({"db": request.state.db, "shared": request.state.shared})

    async def check_isolation(request: Request) -> Response:
        return JSONResponse(hasattr(request.state, "per_request"))

    app = App(routes=[Route("/", endpoint), Route("/fresh", check_isolation)], lifespan=lifespan)
    async with open_client(app) as client:
        assert events == ["startup"]
        assert (await client.get("/")).json() == {"db": "connection", "shared": ["/"]}
        # The state is copied shallowly per request: new keys stay local, shared objects are shared.
        assert (await client.get("/fresh")).json() is False
        assert (await client.get("/")).json()["shared"] == ["/", "/"]
    assert events == ["startup", "request", "request", "shutdown"]


async def test_lifespan_receives_the_app(open_client: OpenClient) -> None:
    seen: list[Any] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        seen.append(app)
        app.state.ready = True
        yield

    async def endpoint(request: Request) -> Response:
        return JSONResponse(request.app.state.ready)

    app = App(routes=[Route("/", endpoint)], lifespan=lifespan)
    async with open_client(app) as client:
        assert (await client.get("/")).json() is True
    assert seen == [app]


async def test_lifespan_startup_failure_raises_in_the_client(open_client: OpenClient) -> None:
    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        raise RuntimeError("cannot start")
        yield

    app = App(lifespan=lifespan)
    with pytest.raises(BaseException) as raised:
        async with open_client(app):
            pass
    assert "cannot start" in _all_messages(raised.value)


def _all_messages(error: BaseException) -> str:
    """Every message in an error, its groups and its causes, to look for a phrase in."""
    parts = [str(error)]
    if isinstance(error, BaseExceptionGroup):
        parts += [_all_messages(inner) for inner in error.exceptions]
    if error.__cause__ is not None:
        parts.append(_all_messages(error.__cause__))
    return "\n".join(parts)


# ----------------------------------------------------------------------------- bad input


async def echo_json(request: Request) -> Response:
    return JSONResponse(await request.json())


async def echo_everything(request: Request) -> Response:
    return JSONResponse(
        {
            "path": request.url.path,
            "params": {key: str(value) for key, value in request.path_params.items()},
            "query": list(request.query_params.multi_items()),
            "cookies": request.cookies,
        }
    )


def bad_input_app() -> App:
    return App(
        routes=[
            Route("/json", echo_json, methods=["POST"]),
            Route("/items/{name}", echo_everything),
            Route("/numbers/{n:int}", echo_everything),
            Route("/", echo_everything),
        ]
    )


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b'{"a": 1} trailing'])
async def test_malformed_json_is_400(open_client: OpenClient, body: bytes) -> None:
    async with open_client(bad_input_app()) as client:
        response = await client.post("/json", content=body)
        assert response.status_code == 400
        assert response.text.startswith("Malformed JSON")
        assert (await client.post("/json", json={"a": [1]})).json() == {"a": [1]}


async def test_unknown_method_is_405_with_allow(open_client: OpenClient) -> None:
    async with open_client(bad_input_app()) as client:
        response = await client.request("BREW", "/json")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("path", ["/items/%zz", "/items/%", "/items/%ff%fe", "/items/%c3%28"])
async def test_bad_percent_encoding_in_path_is_never_500(
    open_client: OpenClient, path: str
) -> None:
    async with open_client(bad_input_app()) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.json()["params"]["name"]  # decoded with replacement, or kept as is


@pytest.mark.parametrize("path", ["/numbers/%ff", "/numbers/12abc", "/numbers/%31%32"])
async def test_path_param_failing_its_convertor_is_404(open_client: OpenClient, path: str) -> None:
    async with open_client(bad_input_app()) as client:
        response = await client.get(path)
    if path.endswith("%31%32"):  # percent-encoded digits decode to a valid int
        assert response.json()["params"] == {"n": "12"}
    else:
        assert response.status_code == 404


@pytest.mark.parametrize("query", ["a=%zz", "a=%ff", "a=%", "=&&=x&%e2%82", "a=1;b=2"])
async def test_bad_query_strings_are_never_500(open_client: OpenClient, query: str) -> None:
    async with open_client(bad_input_app()) as client:
        response = await client.get("/?" + query)
    assert response.status_code == 200
    assert isinstance(response.json()["query"], list)


@pytest.mark.parametrize(
    "cookie",
    [b"a=\xff\xfe", b"=", b";;;", b'a="unterminated', b"a=1; a=2; b", b"\x00=\x01", b"a=\\\\x"],
)
async def test_bad_cookies_are_never_500(open_client: OpenClient, cookie: bytes) -> None:
    async with open_client(bad_input_app()) as client:
        response = await client.get("/", headers={b"cookie": cookie})
    assert response.status_code == 200
    assert isinstance(response.json()["cookies"], dict)
