"""AuthenticationMiddleware: the backend's verdict, malformed credentials, on_error, WebSockets."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from tests.clients import OpenClient
from tests.middleware.test_base import scopes_reaching_app
from tests.test_authentication import BasicAuth, basic, whoami
from toolkit.applications import App
from toolkit.authentication import AuthenticationError
from toolkit.middleware import Middleware
from toolkit.middleware.authentication import AuthenticationMiddleware
from toolkit.requests import HTTPConnection
from toolkit.responses import JSONResponse, Response
from toolkit.routing import Route
from toolkit.types import Message, Receive, Scope, Send


def auth_app(**options: Any) -> App:
    return App(
        routes=[Route("/whoami", whoami)],
        middleware=[Middleware(AuthenticationMiddleware, backend=BasicAuth(), **options)],
    )


async def test_authenticated_and_anonymous_requests(open_client: OpenClient) -> None:
    async with open_client(auth_app()) as client:
        assert (await client.get("/whoami")).json()["authenticated"] is False
        # A scheme the backend does not handle: anonymous, not an error.
        response = await client.get("/whoami", headers={"Authorization": "Bearer abc"})
        assert response.json()["authenticated"] is False
        response = await client.get("/whoami", headers=basic("alice"))
        assert response.json()["user"] == "alice"


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic not-base64!", "Basic a b", "Basic //79", "basic é", "Basic ==="],
)
async def test_malformed_authorization_header_is_a_400(
    open_client: OpenClient, header: str
) -> None:
    async with open_client(auth_app()) as client:
        authorization = header.encode("latin-1")
        response = await client.get("/whoami", headers={b"Authorization": authorization})
    assert (response.status_code, response.text) == (400, "Invalid basic auth credentials")


async def test_on_error_sync_and_async(open_client: OpenClient) -> None:
    def sync_on_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
        return JSONResponse(
            {"error": str(exc), "path": conn.url.path},
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="toolkit"'},
        )

    async def async_on_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
        return sync_on_error(conn, exc)

    for on_error in (sync_on_error, async_on_error):
        async with open_client(auth_app(on_error=on_error)) as client:
            response = await client.get("/whoami", headers={"Authorization": "Basic !"})
        assert response.status_code == 401
        assert response.json() == {"error": "Invalid basic auth credentials", "path": "/whoami"}
        assert response.headers["www-authenticate"] == 'Basic realm="toolkit"'


async def _handshake(
    authorization: bytes, extensions: dict[str, Any] | None = None
) -> tuple[list[Scope], list[Message]]:
    reached: list[Scope] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope)

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "websocket", "headers": [(b"authorization", authorization)]}
    if extensions is not None:
        scope["extensions"] = extensions
    await AuthenticationMiddleware(app, backend=BasicAuth())(scope, receive, send)
    return reached, sent


async def test_websocket_is_authenticated() -> None:
    reached, sent = await _handshake(basic("alice")["Authorization"].encode())
    assert sent == []
    assert reached[0]["user"].display_name == "alice"
    assert reached[0]["auth"].scopes == ["authenticated"]


async def test_websocket_with_malformed_credentials_is_refused() -> None:
    denial = {"websocket.http.response": {}}
    reached, sent = await _handshake(b"Basic !", denial)
    assert reached == []
    assert (sent[0]["type"], sent[0]["status"]) == ("websocket.http.response.start", 400)
    assert sent[1]["body"] == b"Invalid basic auth credentials"

    reached, sent = await _handshake(b"Basic !")
    assert reached == []
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]


async def test_lifespan_passes_through() -> None:
    wrap = partial(AuthenticationMiddleware, backend=BasicAuth())
    assert await scopes_reaching_app(wrap, {"type": "lifespan"}) == [{"type": "lifespan"}]
