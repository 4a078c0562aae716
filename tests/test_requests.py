"""toolkit.requests: what a handler reads from a request, through both test clients.

Every client test runs twice: through ``AsyncTestClient`` in the test's own trio run, and through
the synchronous ``TestClient`` (its trio run lives in a portal thread), driven from a worker
thread so the test's run stays free.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.clients import Client, OpenClient, ThreadedClient
from toolkit.applications import App
from toolkit.datastructures import Address
from toolkit.exceptions import HTTPException
from toolkit.requests import ClientDisconnect, MalformedJSON, Request, cookie_parser
from toolkit.responses import JSONResponse, PlainTextResponse, Response
from toolkit.routing import Mount, NoMatchFound, Route
from toolkit.types import Message, Scope

# ----------------------------------------------------------------------------- both clients


def chunked(client: Client, parts: list[bytes]) -> Any:
    """A request body sent in ``parts`` (chunked encoding), in the form each client takes."""
    if isinstance(client, ThreadedClient):
        return iter(parts)

    async def agen() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    return agen()


def app_with(endpoint: Callable[[Request], Any], path: str = "/", **route_options: Any) -> App:
    return App(routes=[Route(path, endpoint, **route_options)])


# ----------------------------------------------------------------------------- method, url


METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@pytest.mark.parametrize("method", METHODS)
async def test_method(open_client: OpenClient, method: str) -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(request.method)

    async with open_client(app_with(endpoint, methods=METHODS)) as client:
        response = await client.request(method, "/")
    assert response.text == method


async def test_head_is_allowed_where_get_is(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("body", headers={"x-method": request.method})

    async with open_client(app_with(endpoint)) as client:
        response = await client.request("HEAD", "/")
    assert response.status_code == 200
    assert response.headers["x-method"] == "HEAD"


async def test_url_and_its_parts(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        url = request.url
        return JSONResponse(
            {
                "url": str(url),
                "scheme": url.scheme,
                "hostname": url.hostname,
                "port": url.port,
                "path": url.path,
                "query": url.query,
                "base_url": str(request.base_url),
            }
        )

    async with open_client(app_with(endpoint, "/a/b")) as client:
        response = await client.get("/a/b?x=1&y=two")
    assert response.json() == {
        "url": "http://testserver/a/b?x=1&y=two",
        "scheme": "http",
        "hostname": "testserver",
        "port": None,
        "path": "/a/b",
        "query": "x=1&y=two",
        "base_url": "http://testserver/",
    }


async def test_url_follows_the_host_header_and_base_url(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return JSONResponse({"url": str(request.url), "base_url": str(request.base_url)})

    async with open_client(app_with(endpoint), base_url="https://example.org:8443") as client:
        response = await client.get("/")
    assert response.json() == {
        "url": "https://example.org:8443/",
        "base_url": "https://example.org:8443/",
    }


def _where(request: Request) -> Response:
    return JSONResponse(
        {
            "url": str(request.url),
            "base_url": str(request.base_url),
            "root_path": request.scope["root_path"],
        }
    )


async def test_base_url_with_root_path(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return _where(request)

    async with open_client(app_with(endpoint, "/items"), root_path="/api") as client:
        response = await client.get("/api/items?x=1")
    assert response.json() == {
        "url": "http://testserver/api/items?x=1",
        "base_url": "http://testserver/api/",
        "root_path": "/api",
    }


@pytest.mark.parametrize(
    ("root_path", "base_url"), [("", "http://testserver/"), ("/api", "http://testserver/api/")]
)
async def test_base_url_inside_a_mount_is_the_apps(
    open_client: OpenClient, root_path: str, base_url: str
) -> None:
    async def endpoint(request: Request) -> Response:
        return _where(request)

    app = App(routes=[Mount("/sub", routes=[Route("/page", endpoint)])])
    async with open_client(app, root_path=root_path) as client:
        response = await client.get(f"{root_path}/sub/page")
    assert response.json() == {
        "url": f"http://testserver{root_path}/sub/page",
        "base_url": base_url,
        "root_path": f"{root_path}/sub",
    }


# ----------------------------------------------------------------------------- headers, query, path


async def test_headers(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        headers = request.headers
        return JSONResponse(
            {
                "multi": headers.getlist("x-multi"),
                "case": headers["X-CASE"],
                "host": headers["host"],
                "user_agent": headers["user-agent"],
                "missing": headers.get("x-missing"),
            }
        )

    sent = [("X-Multi", "a"), ("x-multi", "b"), ("X-Case", "Value")]
    async with open_client(app_with(endpoint)) as client:
        response = await client.get("/", headers=sent)
    assert response.json() == {
        "multi": ["a", "b"],
        "case": "Value",
        "host": "testserver",
        "user_agent": "testclient",
        "missing": None,
    }


async def test_query_params(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        params = request.query_params
        return JSONResponse({"items": params.multi_items(), "a": params.getlist("a")})

    async with open_client(app_with(endpoint)) as client:
        response = await client.get("/?a=1&a=2&blank=&space=%20x+y&bare&bad=%zz&utf=%C3%A9")
    assert response.json() == {
        "items": [
            ["a", "1"],
            ["a", "2"],
            ["blank", ""],
            ["space", " x y"],
            ["bare", ""],
            ["bad", "%zz"],
            ["utf", "é"],
        ],
        "a": ["1", "2"],
    }


async def test_query_params_with_invalid_utf8_are_replaced(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return JSONResponse(dict(request.query_params))

    async with open_client(app_with(endpoint)) as client:
        response = await client.get("/?name=%ff%fe&ok=1")
    assert response.status_code == 200
    assert response.json() == {"name": "\ufffd\ufffd", "ok": "1"}


async def test_path_params_are_converted(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        params = request.path_params
        return JSONResponse({key: [value, type(value).__name__] for key, value in params.items()})

    app = app_with(endpoint, "/items/{item_id:int}/{name}/{rest:path}")
    async with open_client(app) as client:
        response = await client.get("/items/42/widget/a/b.txt")
    assert response.json() == {
        "item_id": [42, "int"],
        "name": ["widget", "str"],
        "rest": ["a/b.txt", "str"],
    }


async def test_path_params_include_a_mounts(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return JSONResponse(request.path_params)

    app = App(routes=[Mount("/orgs/{org}", routes=[Route("/repos/{repo}", endpoint)])])
    async with open_client(app) as client:
        response = await client.get("/orgs/trio/repos/toolkit")
    assert response.json() == {"org": "trio", "repo": "toolkit"}


async def test_path_params_empty_on_a_static_route(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return JSONResponse(request.path_params)

    async with open_client(app_with(endpoint, "/static")) as client:
        assert (await client.get("/static")).json() == {}


# ----------------------------------------------------------------------------- cookies


async def _cookies(request: Request) -> Response:
    return JSONResponse(request.cookies)


async def test_cookies(open_client: OpenClient) -> None:
    async with open_client(app_with(_cookies)) as client:
        response = await client.get("/", headers={"cookie": 'a=1; b="two words"; c=x=y'})
    assert response.json() == {"a": "1", "b": "two words", "c": "x=y"}


async def test_no_cookie_header_means_no_cookies(open_client: OpenClient) -> None:
    async with open_client(app_with(_cookies)) as client:
        assert (await client.get("/")).json() == {}


MALFORMED_COOKIES = [
    (b"", {}),
    (b";;; ;", {}),
    (b"=; =", {}),
    (b"a=1;;b=2", {"a": "1", "b": "2"}),
    (b"  a  =  1  ", {"a": "1"}),
    (b"bare", {"": "bare"}),
    (b"a=1; a=2", {"a": "2"}),
    (b'a="unterminated', {"a": '"unterminated'}),
    (b'a="\\"esc\\"aped\\""', {"a": '"esc"aped"'}),
    (b"a=%zz; b=\\", {"a": "%zz", "b": "\\"}),
    (b"\xc3\xa4=\xff", {"Ã¤": "ÿ"}),
    (b"a=1, b=2", {"a": "1, b=2"}),
]


@pytest.mark.parametrize(("header", "expected"), MALFORMED_COOKIES)
async def test_malformed_cookie_headers_never_raise(
    open_client: OpenClient, header: bytes, expected: dict[str, str]
) -> None:
    async with open_client(app_with(_cookies)) as client:
        response = await client.get("/", headers=[(b"cookie", header)])
    assert response.status_code == 200
    assert response.json() == expected


@given(st.text())
def test_cookie_parser_never_raises(header: str) -> None:
    parsed = cookie_parser(header)
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in parsed.items())


# ----------------------------------------------------------------------------- client, state, app


async def test_client_address(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        client = request.client
        assert isinstance(client, Address)
        return JSONResponse({"host": client.host, "port": client.port})

    async with open_client(app_with(endpoint), client=("10.1.2.3", 4321)) as client:
        assert (await client.get("/")).json() == {"host": "10.1.2.3", "port": 4321}
    async with open_client(app_with(endpoint)) as client:
        assert (await client.get("/")).json() == {"host": "testclient", "port": 50000}


def test_client_is_none_without_one_in_the_scope() -> None:
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    assert Request(scope).client is None


async def test_state_is_seeded_from_the_lifespan_and_private_to_each_request(
    open_client: OpenClient,
) -> None:
    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        yield {"db": "connection", "shared": []}

    async def endpoint(request: Request) -> Response:
        seen = {"db": request.state.db, "leaked": getattr(request.state, "mine", None)}
        request.state.mine = "set by an earlier request"
        request.state.shared.append(1)  # a shallow copy: the same list object
        return JSONResponse(seen | {"shared": request.state.shared})

    app = App(routes=[Route("/", endpoint)], lifespan=lifespan)
    async with open_client(app) as client:
        first = (await client.get("/")).json()
        second = (await client.get("/")).json()
    assert first == {"db": "connection", "leaked": None, "shared": [1]}
    assert second == {"db": "connection", "leaked": None, "shared": [1, 1]}


async def test_state_set_by_a_middleware_reaches_the_endpoint(open_client: OpenClient) -> None:
    class SetUser:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                Request(scope).state.user = "alice"
            await self.app(scope, receive, send)

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(request.state.user)

    app = app_with(endpoint)
    app.add_middleware(SetUser)
    async with open_client(app) as client:
        assert (await client.get("/")).text == "alice"


async def test_app_is_the_serving_app(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(str(request.app is app))

    app = app_with(endpoint)
    async with open_client(app) as client:
        assert (await client.get("/")).text == "True"


# ----------------------------------------------------------------------------- body and stream


async def _echo_body(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


async def test_body(open_client: OpenClient) -> None:
    app = app_with(_echo_body, methods=["GET", "POST"])
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    async with open_client(app) as client:
        assert (await client.post("/", content=b"hello")).content == b"hello"
        assert (await client.post("/", content=payload)).content == payload
        assert (await client.get("/")).content == b""


async def test_body_of_a_chunked_request(open_client: OpenClient) -> None:
    app = app_with(_echo_body, methods=["POST"])
    async with open_client(app) as client:
        response = await client.post("/", content=chunked(client, [b"one", b"two", b"three"]))
    assert response.content == b"onetwothree"


async def test_stream_yields_the_chunks_as_sent(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return JSONResponse([chunk.decode() async for chunk in request.stream()])

    app = app_with(endpoint, methods=["POST"])
    async with open_client(app) as client:
        response = await client.post("/", content=chunked(client, [b"one", b"two", b"three"]))
    assert response.json() == ["one", "two", "three", ""]


async def test_stream_twice_is_an_error(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        first = b"".join([chunk async for chunk in request.stream()])
        try:
            async for _ in request.stream():
                pass
        except RuntimeError as exc:
            return PlainTextResponse(f"{first.decode()} / {exc}")
        return PlainTextResponse("second stream allowed")

    app = app_with(endpoint, methods=["POST"])
    async with open_client(app) as client:
        assert (await client.post("/", content=b"data")).text == "data / Stream consumed"


async def test_body_after_stream_is_an_error(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        async for _ in request.stream():
            pass
        try:
            await request.body()
        except RuntimeError as exc:
            return PlainTextResponse(str(exc))
        return PlainTextResponse("body after stream allowed")

    app = app_with(endpoint, methods=["POST"])
    async with open_client(app) as client:
        assert (await client.post("/", content=b"data")).text == "Stream consumed"


async def test_stream_after_body_replays_the_cached_body(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        again = await request.body()
        streamed = [chunk.decode() async for chunk in request.stream()]
        return JSONResponse({"body": body.decode(), "same": again is body, "stream": streamed})

    app = app_with(endpoint, methods=["POST"])
    async with open_client(app) as client:
        response = await client.post("/", content=chunked(client, [b"ab", b"cd"]))
    assert response.json() == {"body": "abcd", "same": True, "stream": ["abcd", ""]}


# ----------------------------------------------------------------------------- json


async def _echo_json(request: Request) -> Response:
    return JSONResponse({"received": await request.json()})


async def test_json(open_client: OpenClient) -> None:
    app = app_with(_echo_json, methods=["POST"])
    document = {"name": "Zoë", "tags": ["a", "b"], "n": 1.5, "none": None}
    async with open_client(app) as client:
        assert (await client.post("/", json=document)).json() == {"received": document}
        assert (await client.post("/", content=b"null")).json() == {"received": None}


async def test_json_is_parsed_once(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        first = await request.json()
        return PlainTextResponse(str(first is await request.json()))

    async with open_client(app_with(endpoint, methods=["POST"])) as client:
        assert (await client.post("/", json={"a": [1]})).text == "True"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "Expecting property name enclosed in double quotes"),
        (b"", "Expecting value"),
        (b'{"a": 1} trailing', "Extra data"),
        (b'{"a": "\xff"}', "Body is not UTF-8"),
        (b"\xff\xfe\x00", "Body is not UTF-8"),
    ],
    ids=["syntax", "empty", "extra-data", "bad-utf8-in-string", "bad-utf8-start"],
)
async def test_malformed_json_is_a_400(open_client: OpenClient, body: bytes, reason: str) -> None:
    app = app_with(_echo_json, methods=["POST"])
    async with open_client(app) as client:
        response = await client.post("/", content=body)
    assert response.status_code == 400
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text.startswith(f"Malformed JSON: {reason}")


async def test_malformed_json_is_catchable_as_json_decode_error(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        try:
            await request.json()
        except json.JSONDecodeError as exc:
            assert isinstance(exc, HTTPException) and isinstance(exc, MalformedJSON)
            return PlainTextResponse(f"caught at {exc.pos}: {exc.msg}")
        return PlainTextResponse("parsed")

    async with open_client(app_with(endpoint, methods=["POST"])) as client:
        response = await client.post("/", content=b'{"a": }')
    assert response.status_code == 200
    assert response.text == "caught at 6: Expecting value"


# ----------------------------------------------------------------------------- url_for


async def _links(request: Request) -> Response:
    return JSONResponse(
        {
            "user": str(request.url_for("user", user_id=7)),
            "page": str(request.url_for("admin:page", slug="intro")),
        }
    )


def _url_for_app() -> App:
    async def user(request: Request) -> Response:
        return await _links(request)

    async def page(request: Request) -> Response:
        return await _links(request)

    return App(
        routes=[
            Route("/users/{user_id:int}", user, name="user"),
            Mount("/admin", name="admin", routes=[Route("/pages/{slug}", page, name="page")]),
        ]
    )


@pytest.mark.parametrize("path", ["/users/1", "/admin/pages/x"], ids=["route", "mount"])
async def test_url_for(open_client: OpenClient, path: str) -> None:
    async with open_client(_url_for_app()) as client:
        response = await client.get(path)
    assert response.json() == {
        "user": "http://testserver/users/7",
        "page": "http://testserver/admin/pages/intro",
    }


@pytest.mark.parametrize("path", ["/users/1", "/admin/pages/x"], ids=["route", "mount"])
async def test_url_for_with_root_path_and_host(open_client: OpenClient, path: str) -> None:
    options = {"root_path": "/api", "base_url": "https://example.org"}
    async with open_client(_url_for_app(), **options) as client:
        response = await client.get("/api" + path)
    assert response.json() == {
        "user": "https://example.org/api/users/7",
        "page": "https://example.org/api/admin/pages/intro",
    }


async def test_url_for_an_unknown_name_raises(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(str(request.url_for("nowhere")))

    async with open_client(app_with(endpoint)) as client:
        with pytest.raises(NoMatchFound):
            await client.get("/")
            await client.wait_idle()


def test_url_for_outside_an_app_raises() -> None:
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(RuntimeError, match="inside a toolkit app or router"):
        Request(scope).url_for("anything")


# ------------------------------------------------------------------------ disconnects (raw ASGI)


def _scope(method: str = "POST") -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
    }


def _receive_from(messages: list[Message]) -> Callable[[], Any]:
    queue = iter(messages)

    async def receive() -> Message:
        await trio.lowlevel.checkpoint()
        return next(queue)

    return receive


async def test_body_read_hitting_a_disconnect_raises_client_disconnect() -> None:
    receive = _receive_from(
        [{"type": "http.request", "body": b"part", "more_body": True}, {"type": "http.disconnect"}]
    )
    with pytest.raises(ClientDisconnect):
        await Request(_scope(), receive).body()


async def test_stream_yields_what_came_before_the_disconnect() -> None:
    receive = _receive_from(
        [
            {"type": "http.request", "body": b"one", "more_body": True},
            {"type": "http.request", "body": b"two", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    received: list[bytes] = []
    with pytest.raises(ClientDisconnect):
        async for chunk in Request(_scope(), receive).stream():
            received.append(chunk)
    assert received == [b"one", b"two"]


async def test_json_hitting_a_disconnect_raises_client_disconnect() -> None:
    receive = _receive_from([{"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnect):
        await Request(_scope(), receive).json()


async def test_request_without_receive_cannot_read_the_body() -> None:
    with pytest.raises(RuntimeError, match="Receive channel has not been made available"):
        await Request(_scope()).body()


def test_request_is_a_read_only_mapping_over_the_scope() -> None:
    scope = _scope("GET")
    request = Request(scope)
    assert request["method"] == "GET"
    assert set(request) == set(scope)
    assert len(request) == len(scope)
    assert request != Request(scope)  # each wrapper is its own identity
