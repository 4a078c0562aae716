"""toolkit.authentication: users, credentials and ``@requires`` on every kind of endpoint."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import pytest

from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
    SimpleUser,
    UnauthenticatedUser,
    has_required_scope,
    requires,
)
from toolkit.endpoints import HTTPEndpoint
from toolkit.middleware import Middleware
from toolkit.middleware.authentication import AuthenticationMiddleware
from toolkit.requests import HTTPConnection, Request
from toolkit.responses import JSONResponse, PlainTextResponse, Response
from toolkit.routing import Route
from toolkit.types import Scope


class BasicAuth(AuthenticationBackend):
    """HTTP Basic: the username is the user; "admin" also gets the "admin" scope."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        header = conn.headers.get("authorization")
        if header is None:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise AuthenticationError("Invalid basic auth credentials") from exc
        username, colon, _password = decoded.partition(":")
        if not colon:
            raise AuthenticationError("Invalid basic auth credentials")
        scopes = ["authenticated", "admin"] if username == "admin" else ["authenticated"]
        return AuthCredentials(scopes), SimpleUser(username)


def basic(username: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:secret".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def whoami(request: Request) -> Response:
    user = request.user
    return JSONResponse(
        {
            "authenticated": user.is_authenticated,
            "user": user.display_name,
            "identity": user.identity,
            "scopes": request.auth.scopes,
        }
    )


@requires("authenticated")
async def dashboard(request: Request) -> Response:
    return PlainTextResponse(f"dashboard of {request.user.display_name}")


@requires("authenticated")
def sync_dashboard(request: Request) -> Response:
    return PlainTextResponse(f"sync dashboard of {request.user.display_name}")


@requires(["authenticated", "admin"])
async def admin(request: Request) -> Response:
    return PlainTextResponse("admin area")


@requires("admin", status_code=404)
async def hidden(request: Request) -> Response:
    return PlainTextResponse("hidden area")


@requires("authenticated", redirect="login")
async def members(request: Request) -> Response:
    return PlainTextResponse("members")


@requires("authenticated", redirect="login")
def sync_members(request: Request) -> Response:
    return PlainTextResponse("sync members")


async def login_page(request: Request) -> Response:
    return PlainTextResponse("please log in")


class Account(HTTPEndpoint):
    @requires("authenticated")
    async def get(self, request: Request) -> Response:
        return PlainTextResponse(f"account of {request.user.display_name}")

    @requires("admin")
    def post(self, request: Request) -> Response:
        return PlainTextResponse("account changed")


def auth_app() -> App:
    return App(
        routes=[
            Route("/whoami", whoami),
            Route("/dashboard", dashboard),
            Route("/sync-dashboard", sync_dashboard),
            Route("/admin", admin),
            Route("/hidden", hidden),
            Route("/members", members),
            Route("/sync-members", sync_members),
            Route("/login", login_page, name="login"),
            Route("/account", Account, methods=["GET", "POST"]),
        ],
        middleware=[Middleware(AuthenticationMiddleware, backend=BasicAuth())],
    )


async def test_user_and_credentials(open_client: OpenClient) -> None:
    async with open_client(auth_app()) as client:
        anonymous = (await client.get("/whoami")).json()
        alice = (await client.get("/whoami", headers=basic("alice"))).json()
    assert anonymous == {"authenticated": False, "user": "", "identity": "", "scopes": []}
    assert alice == {
        "authenticated": True,
        "user": "alice",
        "identity": "alice",
        "scopes": ["authenticated"],
    }


@pytest.mark.parametrize("path", ["/dashboard", "/sync-dashboard"])
async def test_requires_on_functions(open_client: OpenClient, path: str) -> None:
    async with open_client(auth_app()) as client:
        assert (await client.get(path)).status_code == 403
        response = await client.get(path, headers=basic("alice"))
    assert response.status_code == 200
    assert response.text.endswith("dashboard of alice")


async def test_requires_every_listed_scope(open_client: OpenClient) -> None:
    async with open_client(auth_app()) as client:
        assert (await client.get("/admin", headers=basic("alice"))).status_code == 403
        assert (await client.get("/admin", headers=basic("admin"))).text == "admin area"


async def test_requires_status_code(open_client: OpenClient) -> None:
    async with open_client(auth_app()) as client:
        assert (await client.get("/hidden", headers=basic("alice"))).status_code == 404
        assert (await client.get("/hidden", headers=basic("admin"))).status_code == 200


@pytest.mark.parametrize("path", ["/members", "/sync-members"])
async def test_requires_redirect(open_client: OpenClient, path: str) -> None:
    async with open_client(auth_app()) as client:
        response = await client.get(f"{path}?tab=1", follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == (
            f"http://testserver/login?next=http%3A%2F%2Ftestserver%2F{path[1:]}%3Ftab%3D1"
        )
        response = await client.get(path, headers=basic("alice"))
        assert response.status_code == 200


async def test_requires_on_methods(open_client: OpenClient) -> None:
    async with open_client(auth_app()) as client:
        assert (await client.get("/account")).status_code == 403
        assert (await client.get("/account", headers=basic("bob"))).text == "account of bob"
        assert (await client.post("/account", headers=basic("bob"))).status_code == 403
        assert (await client.post("/account", headers=basic("admin"))).text == "account changed"


class FakeWebSocket(HTTPConnection):
    """Just enough of a WebSocket for ``requires``: its scope and ``close``."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope)
        self.closed: list[int] = []

    async def close(self, code: int = 1000) -> None:
        self.closed.append(code)


def _websocket(scopes: list[str]) -> FakeWebSocket:
    return FakeWebSocket(
        {"type": "websocket", "auth": AuthCredentials(scopes), "user": UnauthenticatedUser()}
    )


async def test_requires_on_websocket_endpoints() -> None:
    served: list[str] = []

    @requires("chat")
    async def chat(websocket: Any) -> None:
        served.append("chat")

    class Room:
        @requires("chat")
        async def join(self, websocket: Any) -> None:
            served.append("room")

    refused = _websocket([])
    await chat(refused)
    await Room().join(websocket=refused)
    assert (served, refused.closed) == ([], [1000, 1000])

    allowed = _websocket(["chat"])
    await chat(allowed)
    await Room().join(allowed)
    assert (served, allowed.closed) == (["chat", "room"], [])


async def test_requires_checks_the_argument_types() -> None:
    with pytest.raises(AssertionError, match="must be a Request"):
        await dashboard("not a request")  # type: ignore[arg-type]

    @requires("chat")
    async def chat(websocket: Any) -> None:
        pass  # pragma: no cover

    with pytest.raises(AssertionError, match="must be a WebSocket"):
        await chat("not a websocket")


def test_requires_needs_a_request_or_websocket_parameter() -> None:
    with pytest.raises(TypeError, match='No "request" or "websocket" argument'):

        @requires("authenticated")
        async def endpoint(req: Request) -> Response:
            return PlainTextResponse("unreachable")  # pragma: no cover


def test_has_required_scope() -> None:
    conn = HTTPConnection({"type": "http", "auth": AuthCredentials(["a", "b"])})
    assert has_required_scope(conn, ["a"])
    assert has_required_scope(conn, ["a", "b"])
    assert has_required_scope(conn, [])
    assert not has_required_scope(conn, ["a", "c"])


def test_users_and_credentials() -> None:
    assert AuthCredentials().scopes == []
    assert AuthCredentials(("x", "y")).scopes == ["x", "y"]
    user = SimpleUser("alice")
    assert (user.is_authenticated, user.display_name, user.identity) == (True, "alice", "alice")
    anonymous = UnauthenticatedUser()
    assert (anonymous.is_authenticated, anonymous.display_name, anonymous.identity) == (
        False,
        "",
        "",
    )
    for attribute in ("is_authenticated", "display_name", "identity"):
        with pytest.raises(NotImplementedError):
            getattr(BaseUser(), attribute)


async def test_backend_must_be_implemented() -> None:
    with pytest.raises(NotImplementedError):
        await AuthenticationBackend().authenticate(HTTPConnection({"type": "http"}))
