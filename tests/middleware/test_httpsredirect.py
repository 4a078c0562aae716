"""HTTPSRedirectMiddleware: http to https, ws to wss, ports, and hosts that cannot be trusted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.middleware import Middleware
from toolkit.middleware.httpsredirect import HTTPSRedirectMiddleware
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.routing import Route
from toolkit.types import Message, Receive, Scope, Send


async def homepage(request: Request) -> Response:
    return PlainTextResponse("secure")


def redirect_app() -> App:
    return App(routes=[Route("/", homepage)], middleware=[Middleware(HTTPSRedirectMiddleware)])


@pytest.mark.parametrize(
    ("base_url", "location"),
    [
        ("http://testserver", "https://testserver/?q=1"),
        ("http://testserver:80", "https://testserver/?q=1"),
        ("http://testserver:443", "https://testserver/?q=1"),
        ("http://testserver:8080", "https://testserver:8080/?q=1"),
        ("http://[::1]:80", "https://[::1]/?q=1"),
    ],
)
async def test_http_is_redirected_to_https(
    open_client: OpenClient, base_url: str, location: str
) -> None:
    async with open_client(redirect_app(), base_url=base_url) as client:
        response = await client.post("/?q=1", content=b"kept", follow_redirects=False)
    assert response.status_code == 307  # the method and body are kept
    assert response.headers["location"] == location


async def test_https_is_served(open_client: OpenClient) -> None:
    async with open_client(redirect_app(), base_url="https://testserver") as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (200, "secure")


async def test_malformed_host_is_a_400(open_client: OpenClient) -> None:
    async with open_client(redirect_app()) as client:
        response = await client.get("/", headers={"Host": "evil.example/path"})
    assert (response.status_code, response.text) == (400, "Invalid host header")


async def _call(scope: Scope) -> tuple[list[str], list[Message]]:
    reached: list[str] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["scheme"])

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await HTTPSRedirectMiddleware(app)(scope, receive, send)
    return reached, sent


def _scope(scheme: str, headers: list[tuple[bytes, bytes]], **extra: Any) -> Scope:
    scope_type = "websocket" if scheme.startswith("ws") else "http"
    return {
        "type": scope_type,
        "scheme": scheme,
        "method": "GET",
        "path": "/chat",
        "query_string": b"",
        "headers": headers,
        "server": None,
        **extra,
    }


async def test_no_host_and_no_server_address_is_a_400() -> None:
    reached, sent = await _call(_scope("http", []))
    assert reached == []
    assert sent[0]["status"] == 400


async def test_without_host_header_the_server_address_is_used() -> None:
    reached, sent = await _call(_scope("http", [], server=("10.0.0.1", 8000)))
    assert reached == []
    assert sent[0]["status"] == 307
    assert (b"location", b"https://10.0.0.1:8000/chat") in sent[0]["headers"]


async def test_ws_is_redirected_to_wss() -> None:
    extensions = {"websocket.http.response": {}}
    scope = _scope("ws", [(b"host", b"example.com")], extensions=extensions)
    reached, sent = await _call(scope)
    assert reached == []
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 307
    assert (b"location", b"wss://example.com/chat") in sent[0]["headers"]


async def test_ws_without_denial_responses_is_closed() -> None:
    reached, sent = await _call(_scope("ws", [(b"host", b"example.com")]))
    assert reached == []
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]


async def test_wss_and_lifespan_pass_through() -> None:
    reached, sent = await _call(_scope("wss", [(b"host", b"example.com")]))
    assert (reached, sent) == (["wss"], [])
    reached, sent = await _call({"type": "lifespan", "scheme": "lifespan-has-no-scheme"})
    assert (reached, sent) == (["lifespan-has-no-scheme"], [])
