"""toolkit.middleware.errors: the outermost layer, a 500 for any unhandled exception.

Client tests run through both test clients (the sync one driven from a worker thread); the tests
about what is sent after a response started call the middleware as a bare ASGI callable.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.middleware.errors import ServerErrorMiddleware
from toolkit.requests import ClientDisconnect, Request
from toolkit.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from toolkit.routing import Route
from toolkit.types import Message, Receive, Scope, Send

# ----------------------------------------------------------------------------- apps and raw ASGI


class Boom(Exception):
    """The error the test endpoints raise."""


async def boom(request: Request) -> Response:
    raise Boom("bad <value> & more")


def boom_app(**options: Any) -> App:
    return App(routes=[Route("/boom", boom)], **options)


def http_scope(method: str = "GET") -> Scope:
    return {
        "type": "http",
        "method": method,
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
    }


class Recorder:
    """A raw ASGI peer: feeds ``incoming`` to ``receive`` and records what the app sends."""

    def __init__(self, incoming: list[Message] | None = None) -> None:
        self.incoming = list(incoming or [{"type": "http.request", "body": b""}])
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        await trio.lowlevel.checkpoint()
        if self.incoming:
            return self.incoming.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def types(self) -> list[str]:
        return [message["type"] for message in self.sent]


# ----------------------------------------------------------------------------- production 500


async def test_unhandled_error_is_a_bare_500(open_client: OpenClient) -> None:
    async with open_client(boom_app(), raise_server_exceptions=False) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert response.headers.multi_items() == [
        ("content-length", "21"),
        ("content-type", "text/plain; charset=utf-8"),
    ]


async def test_unhandled_error_still_propagates(open_client: OpenClient) -> None:
    async with open_client(boom_app()) as client:
        with pytest.raises(Boom, match="bad <value>"):
            await client.get("/boom")
            await client.wait_idle()


async def test_the_500_is_sent_before_the_error_propagates() -> None:
    peer = Recorder()
    scope = {**http_scope(), "path": "/boom", "raw_path": b"/boom"}
    with pytest.raises(Boom):
        await ServerErrorMiddleware(boom_app().router)(scope, peer.receive, peer.send)
    assert peer.types == ["http.response.start", "http.response.body"]
    assert peer.sent[0]["status"] == 500
    assert peer.sent[1]["body"] == b"Internal Server Error"


# ----------------------------------------------------------------------------- debug page


async def test_debug_page_as_html_for_browsers(open_client: OpenClient) -> None:
    app = boom_app(debug=True)
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/boom", headers={"accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert page.startswith("<!DOCTYPE html>")
    assert "<h1>Boom: bad &lt;value&gt; &amp; more</h1>" in page
    assert "<p>GET /boom</p>" in page
    assert "bad <value>" not in page  # escaped everywhere
    assert ", in boom</div>" in page  # the endpoint's frame
    assert '<span class="current">' in page and "raise Boom(" in page


async def test_debug_page_as_text_otherwise(open_client: OpenClient) -> None:
    app = boom_app(debug=True)
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/boom", headers={"accept": "application/json"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text.startswith("Traceback (most recent call last):")
    assert 'raise Boom("bad <value> & more")' in response.text
    assert response.text.endswith("Boom: bad <value> & more\n")


async def test_debug_page_wins_over_a_custom_500_handler(open_client: OpenClient) -> None:
    def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("custom", status_code=500)

    app = boom_app(debug=True, exception_handlers={500: handler})
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/boom")
    assert response.text.startswith("Traceback")


# ----------------------------------------------------------------------------- custom 500 handler


@pytest.mark.parametrize("key", [500, Exception], ids=["by-status", "by-class"])
async def test_custom_async_500_handler(open_client: OpenClient, key: Any) -> None:
    async def handler(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {"error": type(exc).__name__, "path": request.url.path}, status_code=503
        )

    app = boom_app(exception_handlers={key: handler})
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/boom")
    assert response.status_code == 503
    assert response.json() == {"error": "Boom", "path": "/boom"}


async def test_custom_sync_500_handler_runs_in_a_worker_thread(open_client: OpenClient) -> None:
    threads: dict[str, int] = {}

    async def endpoint(request: Request) -> Response:
        threads["endpoint"] = threading.get_ident()
        raise Boom("x")

    def handler(request: Request, exc: Exception) -> Response:
        threads["handler"] = threading.get_ident()
        return PlainTextResponse(f"handled {exc}", status_code=500)

    app = App(routes=[Route("/boom", endpoint)], exception_handlers={Exception: handler})
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/boom")
    assert (response.status_code, response.text) == (500, "handled x")
    assert threads["handler"] != threads["endpoint"]


async def test_error_propagates_after_the_custom_handler_answered(open_client: OpenClient) -> None:
    async def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("custom", status_code=500)

    app = boom_app(exception_handlers={500: handler})
    async with open_client(app) as client:
        with pytest.raises(Boom):
            await client.get("/boom")
            await client.wait_idle()


# ----------------------------------------------------------------------- after the response started


async def _start_then_fail(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise Boom("mid-stream")


@pytest.mark.parametrize("debug", [False, True])
async def test_error_after_the_response_started_sends_nothing_more(debug: bool) -> None:
    peer = Recorder()
    with pytest.raises(Boom, match="mid-stream"):
        await ServerErrorMiddleware(_start_then_fail, debug=debug)(
            http_scope(), peer.receive, peer.send
        )
    assert peer.types == ["http.response.start", "http.response.body"]
    assert peer.sent[1]["body"] == b"partial"


async def test_error_mid_stream_cuts_the_body_and_propagates(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"partial"
            raise Boom("mid-stream")

        return StreamingResponse(body())

    app = App(routes=[Route("/", endpoint)])
    async with open_client(app) as client:
        with pytest.raises(Boom, match="mid-stream"):
            await client.get("/")
            await client.wait_idle()
    async with open_client(app, raise_server_exceptions=False) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/")


# ----------------------------------------------------------------------------- not errors


async def test_client_disconnect_is_not_an_error() -> None:
    async def reads_body(scope: Scope, receive: Receive, send: Send) -> None:
        await Request(scope, receive).body()
        raise AssertionError("the body read should have failed")

    peer = Recorder(
        [{"type": "http.request", "body": b"half", "more_body": True}, {"type": "http.disconnect"}]
    )
    await ServerErrorMiddleware(reads_body)(http_scope("POST"), peer.receive, peer.send)
    assert peer.sent == []


async def test_client_disconnect_in_an_app_sends_nothing_and_raises_nothing() -> None:
    async def upload(request: Request) -> Response:
        return PlainTextResponse(f"got {len(await request.body())} bytes")

    app = App(routes=[Route("/", upload, methods=["POST"])])
    peer = Recorder(
        [{"type": "http.request", "body": b"half", "more_body": True}, {"type": "http.disconnect"}]
    )
    with trio.fail_after(5):
        await app(http_scope("POST"), peer.receive, peer.send)
    assert peer.sent == []


async def test_client_disconnect_raised_directly_is_swallowed() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ClientDisconnect()

    peer = Recorder()
    await ServerErrorMiddleware(app)(http_scope(), peer.receive, peer.send)
    assert peer.sent == []


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_other_scopes_pass_through_untouched(scope_type: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise Boom(scope_type)

    peer = Recorder()
    with pytest.raises(Boom, match=scope_type):
        await ServerErrorMiddleware(app)({"type": scope_type}, peer.receive, peer.send)
    assert peer.sent == []
