"""CORSMiddleware: simple and preflight requests, every option, refusals with a 400."""

from __future__ import annotations

from functools import partial
from typing import Any

from tests.clients import OpenClient
from tests.middleware.test_base import scopes_reaching_app
from toolkit.applications import App
from toolkit.middleware import Middleware
from toolkit.middleware.cors import CORSMiddleware
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.routing import Route


async def homepage(request: Request) -> Response:
    return PlainTextResponse("Homepage", headers={"X-Status": "ok"})


def cors_app(**options: Any) -> App:
    return App(
        routes=[Route("/", homepage, methods=["GET", "POST", "DELETE"])],
        middleware=[Middleware(CORSMiddleware, **options)],
    )


def preflight(origin: str, method: str = "GET", headers: str | None = None) -> dict[str, str]:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        request_headers["Access-Control-Request-Headers"] = headers
    return request_headers


async def test_allow_all_origins(open_client: OpenClient) -> None:
    app = cors_app(
        allow_origins=["*"], allow_headers=["*"], allow_methods=["*"], expose_headers=["X-Status"]
    )
    async with open_client(app) as client:
        response = await client.request(
            "OPTIONS", "/", headers=preflight("https://example.org", "DELETE", "X-Example")
        )
        assert response.status_code == 200
        assert response.text == "OK"
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["access-control-allow-headers"] == "X-Example"
        assert "DELETE" in response.headers["access-control-allow-methods"]
        assert response.headers["access-control-max-age"] == "600"
        assert "access-control-allow-credentials" not in response.headers

        response = await client.get("/", headers={"Origin": "https://example.org"})
        assert response.status_code == 200
        assert response.text == "Homepage"
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["access-control-expose-headers"] == "X-Status"
        assert response.headers["vary"] == "Origin"

        # A same-origin request (no Origin header) gets no CORS headers, but still Vary.
        response = await client.get("/")
        assert "access-control-allow-origin" not in response.headers
        assert response.headers["vary"] == "Origin"


async def test_allow_all_origins_with_credentials_echoes_the_origin(
    open_client: OpenClient,
) -> None:
    app = cors_app(allow_origins=["*"], allow_credentials=True, allow_headers=["*"])
    async with open_client(app) as client:
        response = await client.request(
            "OPTIONS", "/", headers=preflight("https://example.org", headers="X-Example")
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://example.org"
        assert response.headers["access-control-allow-credentials"] == "true"
        assert "Origin" in response.headers["vary"]

        response = await client.get("/", headers={"Origin": "https://example.org"})
        assert response.headers["access-control-allow-origin"] == "https://example.org"
        assert response.headers["access-control-allow-credentials"] == "true"
        assert response.headers["vary"] == "Origin"


async def test_specific_origins(open_client: OpenClient) -> None:
    app = cors_app(
        allow_origins=["https://example.org"], allow_headers=["X-Example", "Content-Type"]
    )
    async with open_client(app) as client:
        response = await client.request(
            "OPTIONS", "/", headers=preflight("https://example.org", headers="x-example")
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://example.org"
        assert response.headers["access-control-allow-headers"] == (
            "Accept, Accept-Language, Content-Language, Content-Type, X-Example"
        )

        response = await client.get("/", headers={"Origin": "https://example.org"})
        assert response.headers["access-control-allow-origin"] == "https://example.org"
        assert response.headers["vary"] == "Origin"

        # An unknown origin's simple request is served, but without the allow header.
        response = await client.get("/", headers={"Origin": "https://evil.example"})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
        assert response.headers["vary"] == "Origin"


async def test_preflight_from_a_disallowed_origin_is_a_400(open_client: OpenClient) -> None:
    app = cors_app(allow_origins=["https://example.org"])
    async with open_client(app) as client:
        response = await client.request("OPTIONS", "/", headers=preflight("https://evil.example"))
    assert response.status_code == 400
    assert response.text == "Disallowed CORS origin"
    assert "access-control-allow-origin" not in response.headers


async def test_preflight_with_disallowed_headers_is_a_400(open_client: OpenClient) -> None:
    app = cors_app(allow_origins=["https://example.org"], allow_headers=["X-Allowed"])
    async with open_client(app) as client:
        response = await client.request(
            "OPTIONS", "/", headers=preflight("https://example.org", headers="X-Allowed, X-Secret")
        )
        assert response.status_code == 400
        assert response.text == "Disallowed CORS headers"

        # Safelisted headers are always allowed; empty entries are ignored.
        response = await client.request(
            "OPTIONS", "/", headers=preflight("https://example.org", headers="accept, , X-Allowed")
        )
        assert response.status_code == 200


async def test_preflight_with_a_disallowed_method_is_a_400(open_client: OpenClient) -> None:
    app = cors_app(allow_origins=["https://example.org"], allow_methods=["GET", "POST"])
    async with open_client(app) as client:
        response = await client.request(
            "OPTIONS", "/", headers=preflight("https://example.org", "DELETE")
        )
        assert (response.status_code, response.text) == (400, "Disallowed CORS method")
        assert response.headers["access-control-allow-methods"] == "GET, POST"


async def test_preflight_refusal_lists_every_failure(open_client: OpenClient) -> None:
    app = cors_app(allow_origins=["https://example.org"])
    async with open_client(app) as client:
        response = await client.request(
            "OPTIONS", "/", headers=preflight("https://evil.example", "PUT", "X-Secret")
        )
    assert (response.status_code, response.text) == (
        400,
        "Disallowed CORS origin, method, headers",
    )


async def test_allow_origin_regex(open_client: OpenClient) -> None:
    app = cors_app(allow_origin_regex=r"https://.*\.example\.org", allow_credentials=True)
    async with open_client(app) as client:
        response = await client.get("/", headers={"Origin": "https://api.example.org"})
        assert response.headers["access-control-allow-origin"] == "https://api.example.org"
        assert response.headers["access-control-allow-credentials"] == "true"

        response = await client.request(
            "OPTIONS", "/", headers=preflight("https://api.example.org")
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://api.example.org"

        # The regex must match the whole origin, not a prefix of it.
        response = await client.get("/", headers={"Origin": "https://api.example.org.evil.example"})
        assert "access-control-allow-origin" not in response.headers
        response = await client.request(
            "OPTIONS", "/", headers=preflight("https://api.example.org.evil.example")
        )
        assert response.status_code == 400


async def test_max_age_and_private_network(open_client: OpenClient) -> None:
    app = cors_app(allow_origins=["*"], max_age=42, allow_private_network=True)
    async with open_client(app) as client:
        headers = preflight("https://example.org")
        headers["Access-Control-Request-Private-Network"] = "true"
        response = await client.request("OPTIONS", "/", headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-max-age"] == "42"
    assert response.headers["access-control-allow-private-network"] == "true"


async def test_private_network_is_refused_by_default(open_client: OpenClient) -> None:
    app = cors_app(allow_origins=["*"])
    async with open_client(app) as client:
        headers = preflight("https://example.org")
        headers["Access-Control-Request-Private-Network"] = "true"
        response = await client.request("OPTIONS", "/", headers=headers)
    assert (response.status_code, response.text) == (400, "Disallowed CORS private-network")


async def test_plain_options_request_reaches_the_app(open_client: OpenClient) -> None:
    """An OPTIONS without Access-Control-Request-Method is not a preflight."""

    async def options(request: Request) -> Response:
        return PlainTextResponse("app options")

    app = App(
        routes=[Route("/", options, methods=["OPTIONS"])],
        middleware=[Middleware(CORSMiddleware, allow_origins=["*"])],
    )
    async with open_client(app) as client:
        response = await client.request("OPTIONS", "/", headers={"Origin": "https://example.org"})
    assert response.text == "app options"
    assert response.headers["access-control-allow-origin"] == "*"


async def test_existing_vary_header_is_extended(open_client: OpenClient) -> None:
    async def varied(request: Request) -> Response:
        return PlainTextResponse("x", headers={"Vary": "Accept-Encoding"})

    app = App(
        routes=[Route("/", varied)],
        middleware=[Middleware(CORSMiddleware, allow_origins=["https://example.org"])],
    )
    async with open_client(app) as client:
        response = await client.get("/", headers={"Origin": "https://example.org"})
    assert response.headers["vary"] == "Accept-Encoding, Origin"


async def test_websocket_scopes_pass_through() -> None:
    scope = {"type": "websocket", "headers": [(b"origin", b"https://evil.example")]}
    wrap = partial(CORSMiddleware, allow_origins=["https://example.org"])
    assert await scopes_reaching_app(wrap, scope) == [scope]
