"""One toolkit App served by the real hypercorn trio server on 127.0.0.1, over real sockets.

The ``live_server`` fixture (toolkit's pytest plugin) serves the ``app`` fixture below in the
test's own trio run, so a test and a handler can share trio events. Requests go through a real
``httpx.AsyncClient``, or, for bytes httpx would never send, a hand-written request over a trio
socket. Every test is bounded in time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from toolkit.applications import App
from toolkit.requests import Request
from toolkit.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from toolkit.routing import Route
from toolkit.testing.live import LiveServer

TIME_LIMIT = 10


class StreamGate:
    """Lets a test hold the streaming endpoint between its two chunks."""

    def __init__(self) -> None:
        self.first_received = trio.Event()
        self.finished = False


@pytest.fixture
def gate() -> StreamGate:
    return StreamGate()


@pytest.fixture
def app(gate: StreamGate) -> App:
    async def home(request: Request) -> Response:
        return PlainTextResponse("home")

    async def user(request: Request) -> Response:
        return JSONResponse({"user_id": request.path_params["user_id"]})

    async def echo(request: Request) -> Response:
        return JSONResponse({"received": await request.json()})

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            await gate.first_received.wait()
            yield b"second"
            gate.finished = True

        return StreamingResponse(chunks(), media_type="text/plain")

    async def set_cookie(request: Request) -> Response:
        response = PlainTextResponse("set")
        response.set_cookie("session", "abc 123", httponly=True)
        return response

    async def read_cookies(request: Request) -> Response:
        return JSONResponse(request.cookies)

    async def clear_cookie(request: Request) -> Response:
        response = PlainTextResponse("cleared")
        response.delete_cookie("session")
        return response

    async def old(request: Request) -> Response:
        return RedirectResponse(request.url_for("user", user_id=7))

    async def listing(request: Request) -> Response:
        return PlainTextResponse("listing")

    async def boom(request: Request) -> Response:
        raise RuntimeError("handler broke")

    async def item(request: Request) -> Response:
        return JSONResponse({"name": request.path_params["name"]})

    async def query(request: Request) -> Response:
        return JSONResponse(request.query_params.multi_items())

    return App(
        routes=[
            Route("/", home),
            Route("/users/{user_id:int}", user, name="user"),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/cookies/set", set_cookie),
            Route("/cookies", read_cookies),
            Route("/cookies/clear", clear_cookie),
            Route("/old", old),
            Route("/listing/", listing),
            Route("/boom", boom),
            Route("/items/{name}", item),
            Route("/query", query),
        ]
    )


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        yield client


# ----------------------------------------------------------------------------- routing


async def test_routing_and_path_params(http: httpx.AsyncClient) -> None:
    with trio.fail_after(TIME_LIMIT):
        home = await http.get("/")
        user = await http.get("/users/42")
        not_int = await http.get("/users/forty-two")
    assert (home.status_code, home.text) == (200, "home")
    assert home.headers["content-type"] == "text/plain; charset=utf-8"
    assert home.headers["content-length"] == "4"
    assert user.json() == {"user_id": 42}
    assert not_int.status_code == 404


async def test_not_found_and_method_not_allowed(http: httpx.AsyncClient) -> None:
    with trio.fail_after(TIME_LIMIT):
        missing = await http.get("/nowhere")
        wrong_method = await http.delete("/users/1")
    assert (missing.status_code, missing.text) == (404, "Not Found")
    assert (wrong_method.status_code, wrong_method.text) == (405, "Method Not Allowed")
    assert wrong_method.headers["allow"] == "GET, HEAD"


# ----------------------------------------------------------------------------- JSON


async def test_json_in_and_out(http: httpx.AsyncClient) -> None:
    document = {"name": "Zoë", "tags": ["a", "b"], "nested": {"n": 1.5, "none": None}}
    with trio.fail_after(TIME_LIMIT):
        response = await http.post("/echo", json=document)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"received": document}
    assert "Zoë".encode() in response.content  # non-ASCII sent as UTF-8, not escaped


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"a": "\xff"}'])
async def test_malformed_json_is_a_400(http: httpx.AsyncClient, body: bytes) -> None:
    with trio.fail_after(TIME_LIMIT):
        response = await http.post("/echo", content=body)
    assert response.status_code == 400
    assert response.text.startswith("Malformed JSON")


# ----------------------------------------------------------------------------- streaming, HEAD


async def test_stream_chunks_arrive_before_the_generator_finishes(
    http: httpx.AsyncClient, gate: StreamGate
) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with http.stream("GET", "/stream") as response:
            assert response.status_code == 200
            assert "content-length" not in response.headers
            parts = aiter(response.aiter_raw())
            # The generator waits on the gate, so "first" crossed the socket on its own.
            assert await anext(parts) == b"first"
            assert not gate.finished
            gate.first_received.set()
            assert b"".join([part async for part in parts]) == b"second"
    assert gate.finished


async def test_head_has_no_body_but_the_gets_length(http: httpx.AsyncClient) -> None:
    with trio.fail_after(TIME_LIMIT):
        get = await http.get("/users/5")
        head = await http.head("/users/5")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content)) == "13"
    assert head.headers["content-type"] == "application/json"


# ----------------------------------------------------------------------------- cookies, redirects


async def test_cookies_round_trip(http: httpx.AsyncClient) -> None:
    with trio.fail_after(TIME_LIMIT):
        set_response = await http.get("/cookies/set")
        assert set_response.headers["set-cookie"] == (
            'session="abc 123"; HttpOnly; Path=/; SameSite=lax'
        )
        assert (await http.get("/cookies")).json() == {"session": "abc 123"}
        await http.get("/cookies/clear")
        assert (await http.get("/cookies")).json() == {}


async def test_redirect_slashes(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    with trio.fail_after(TIME_LIMIT):
        redirect = await http.get("/listing?page=2")
        followed = await http.get("/listing", follow_redirects=True)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{live_server.url}/listing/?page=2"
    assert (followed.status_code, followed.text) == (200, "listing")


async def test_redirect_response(http: httpx.AsyncClient, live_server: LiveServer) -> None:
    with trio.fail_after(TIME_LIMIT):
        redirect = await http.get("/old")
        followed = await http.get("/old", follow_redirects=True)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{live_server.url}/users/7"
    assert followed.json() == {"user_id": 7}


# ----------------------------------------------------------------------------- errors


async def test_handler_error_is_a_500_and_the_server_keeps_serving(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    with trio.fail_after(TIME_LIMIT):
        failed = await http.get("/boom")
        again = await http.get("/")  # same client, same or a new connection
        async with httpx.AsyncClient(base_url=live_server.url) as fresh:
            fresh_answer = await fresh.get("/users/3")
    assert (failed.status_code, failed.text) == (500, "Internal Server Error")
    assert (again.status_code, again.text) == (200, "home")
    assert fresh_answer.json() == {"user_id": 3}


async def raw_request(server: LiveServer, target: bytes, headers: bytes = b"") -> tuple[int, bytes]:
    """Send a hand-written GET for ``target`` and return the status code and the body."""
    request = (
        b"GET "
        + target
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + headers
        + b"Connection: close\r\n\r\n"
    )
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(request)
        received = b""
        while chunk := await stream.receive_some():
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    return int(status_line.split(b" ")[1]), body


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/items/plain", (200, b'{"name":"plain"}')),
        (b"/items/caf%C3%A9", (200, '{"name":"café"}'.encode())),
        (b"/items/%ff%fe", (200, '{"name":"\ufffd\ufffd"}'.encode())),
        (b"/items/%zz", (200, b'{"name":"%zz"}')),
        (b"/items/50%", (200, b'{"name":"50%"}')),
        (b"/users/%ff", (404, b"Not Found")),
        (b"/%ff/%c3", (404, b"Not Found")),
        (b"/query?name=%ff%fe&ok=1", (200, '[["name","\ufffd\ufffd"],["ok","1"]]'.encode())),
        (b"/query?%zz=%&&=x", (200, b'[["%zz","%"],["","x"]]')),
    ],
)
async def test_bad_percent_encoding_is_decoded_leniently(
    live_server: LiveServer, target: bytes, expected: tuple[int, bytes]
) -> None:
    with trio.fail_after(TIME_LIMIT):
        assert await raw_request(live_server, target) == expected


@pytest.mark.parametrize(
    "target", [b"/items/\xff\xfe", b"/items/caf\xc3\xa9", b"/query?name=\xff", b"/\x7f"]
)
async def test_raw_non_ascii_in_the_request_target_is_refused_with_a_4xx(
    live_server: LiveServer, target: bytes
) -> None:
    with trio.fail_after(TIME_LIMIT):
        status, _ = await raw_request(live_server, target)
    assert 400 <= status < 500


async def test_invalid_utf8_in_a_cookie_header_is_not_a_500(live_server: LiveServer) -> None:
    with trio.fail_after(TIME_LIMIT):
        status, body = await raw_request(live_server, b"/cookies", b"Cookie: a=\xff\xfe; b=2\r\n")
    assert (status, body) == (200, '{"a":"ÿþ","b":"2"}'.encode())


async def test_server_still_serves_after_bad_requests(
    http: httpx.AsyncClient, live_server: LiveServer
) -> None:
    with trio.fail_after(TIME_LIMIT):
        for target in (b"/items/\xff", b"/items/%ff", b"/boom"):
            await raw_request(live_server, target)
        response = await http.get("/")
    assert response.text == "home"
