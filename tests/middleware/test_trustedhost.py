"""TrustedHostMiddleware: allowed hosts, wildcards, www redirects, forged and malformed Hosts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.middleware import Middleware
from toolkit.middleware.trustedhost import TrustedHostMiddleware
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.routing import Route
from toolkit.types import Message, Receive, Scope, Send


async def homepage(request: Request) -> Response:
    return PlainTextResponse(f"served {request.url}")


def trusted_app(**options: Any) -> App:
    return App(
        routes=[Route("/", homepage)], middleware=[Middleware(TrustedHostMiddleware, **options)]
    )


async def test_allowed_hosts(open_client: OpenClient) -> None:
    app = trusted_app(allowed_hosts=["testserver", "*.testserver", "Example.com"])
    async with open_client(app) as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/", headers={"Host": "api.testserver"})).status_code == 200
        assert (await client.get("/", headers={"Host": "a.b.testserver"})).status_code == 200
        assert (await client.get("/", headers={"Host": "EXAMPLE.com:8000"})).status_code == 200


async def test_forged_host_is_a_400(open_client: OpenClient) -> None:
    app = trusted_app(allowed_hosts=["testserver", "*.testserver"])
    async with open_client(app) as client:
        for host in ("evil.example", "testserver.evil.example", "eviltestserver"):
            response = await client.get("/", headers={"Host": host})
            assert (response.status_code, response.text) == (400, "Invalid host header")


@pytest.mark.parametrize(
    "host", ["testserver/evil", "testserver@evil", "testserver:99999", "[::zz]", "a b", ""]
)
async def test_malformed_host_is_a_400(open_client: OpenClient, host: str) -> None:
    app = trusted_app(allowed_hosts=["testserver"])
    async with open_client(app) as client:
        response = await client.get("/", headers={"Host": host})
    assert (response.status_code, response.text) == (400, "Invalid host header")


async def test_ipv6_host(open_client: OpenClient) -> None:
    app = trusted_app(allowed_hosts=["[::1]"])
    async with open_client(app) as client:
        assert (await client.get("/", headers={"Host": "[::1]:8000"})).status_code == 200
        assert (await client.get("/", headers={"Host": "[::2]"})).status_code == 400


async def test_default_allows_any_host(open_client: OpenClient) -> None:
    async with open_client(trusted_app()) as client:
        response = await client.get("/", headers={"Host": "anything.example"})
    assert response.status_code == 200


async def test_www_redirect(open_client: OpenClient) -> None:
    app = trusted_app(allowed_hosts=["www.example.com"])
    async with open_client(app, base_url="https://example.com") as client:
        response = await client.get("/path?q=1", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "https://www.example.com/path?q=1"


async def test_www_redirect_can_be_turned_off(open_client: OpenClient) -> None:
    app = trusted_app(allowed_hosts=["www.example.com"], www_redirect=False)
    async with open_client(app, base_url="https://example.com") as client:
        response = await client.get("/", follow_redirects=False)
    assert response.status_code == 400


def test_wildcards_must_be_leading_subdomain_patterns() -> None:
    for pattern in ("example.*", "*example.com", "ex*ample.com"):
        with pytest.raises(AssertionError, match="Domain wildcard"):
            TrustedHostMiddleware(homepage, allowed_hosts=[pattern])  # type: ignore[arg-type]


def _websocket_scope(host: bytes, extensions: dict[str, Any] | None = None) -> Scope:
    scope: Scope = {
        "type": "websocket",
        "scheme": "ws",
        "path": "/",
        "query_string": b"",
        "headers": [(b"host", host)],
        "server": ("127.0.0.1", 8000),
    }
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


async def _run(middleware: Any, scope: Scope) -> tuple[list[str], list[Message]]:
    reached: list[str] = []
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware.app = _reach(reached)
    await middleware(scope, receive, send)
    return reached, sent


def _reach(reached: list[str]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["type"])

    return app


async def test_websocket_with_a_trusted_host_reaches_the_app() -> None:
    middleware = TrustedHostMiddleware(homepage, allowed_hosts=["example.com"])  # type: ignore[arg-type]
    reached, sent = await _run(middleware, _websocket_scope(b"example.com"))
    assert (reached, sent) == (["websocket"], [])


async def test_websocket_with_a_forged_host_is_denied() -> None:
    middleware = TrustedHostMiddleware(homepage, allowed_hosts=["example.com"])  # type: ignore[arg-type]
    denial = {"websocket.http.response": {}}
    reached, sent = await _run(middleware, _websocket_scope(b"evil.example", denial))
    assert reached == []
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"Invalid host header"

    # A server without denial responses: the handshake is closed (a 403 for the client).
    reached, sent = await _run(middleware, _websocket_scope(b"evil.example"))
    assert reached == []
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]
