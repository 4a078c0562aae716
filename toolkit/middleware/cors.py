"""``CORSMiddleware``: Cross-Origin Resource Sharing headers, and answers to preflight requests.

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``)
is answered here: 200 when the origin, method and headers are all allowed,
else 400 naming what was refused ("Disallowed CORS origin, headers"). Browsers
enforce the policy; the 400 only makes a refusal easy to diagnose. Other
requests go to the app, and the CORS headers are added to its response,
with ``Vary: Origin`` on every response.
Everything that depends on the configuration is computed once, up front.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from toolkit.datastructures import Headers, MutableHeaders
from toolkit.responses import PlainTextResponse, Response
from toolkit.types import ASGIApp, Message, Receive, Scope, Send

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")
#: Request headers a browser may always send cross-origin (the CORS safelist).
SAFELISTED_HEADERS = {"Accept", "Accept-Language", "Content-Language", "Content-Type"}

_PREFLIGHT_VARY = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)


class CORSMiddleware:
    """Allow the configured origins to call this app from a browser.

    ``allow_origins`` may hold ``"*"``; ``allow_origin_regex`` must match the
    whole origin. ``allow_methods`` and ``allow_headers`` may hold ``"*"``.
    With ``allow_credentials`` the allowed origin is echoed back instead of
    ``*``, as browsers require. WebSocket and lifespan scopes pass through.
    """

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: Collection[str] = (),
        allow_methods: Collection[str] = ("GET",),
        allow_headers: Collection[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        allow_private_network: bool = False,
        expose_headers: Collection[str] = (),
        max_age: int = 600,
    ) -> None:
        if "*" in allow_methods:
            allow_methods = ALL_METHODS
        self.app = app
        self.allow_all_origins = "*" in allow_origins
        self.allow_all_headers = "*" in allow_headers
        self.allow_origins = frozenset(allow_origins)
        self.allow_origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        self.allow_methods = frozenset(method.upper() for method in allow_methods)
        allowed_headers = sorted(SAFELISTED_HEADERS | set(allow_headers) - {"*"})
        self.allow_headers = frozenset(header.lower() for header in allowed_headers)
        self.allow_credentials = allow_credentials
        self.allow_private_network = allow_private_network
        # With credentials, browsers refuse "*": the origin must be echoed back.
        self.echo_origin = not self.allow_all_origins or allow_credentials

        simple: dict[str, str] = {}
        if self.allow_all_origins and not allow_credentials:
            simple["Access-Control-Allow-Origin"] = "*"
        if allow_credentials:
            simple["Access-Control-Allow-Credentials"] = "true"
        if expose_headers:
            simple["Access-Control-Expose-Headers"] = ", ".join(expose_headers)
        self.simple_headers = simple

        preflight = {"Vary": _PREFLIGHT_VARY}
        if not self.echo_origin:
            preflight["Access-Control-Allow-Origin"] = "*"
        preflight["Access-Control-Allow-Methods"] = ", ".join(allow_methods)
        preflight["Access-Control-Max-Age"] = str(max_age)
        if not self.allow_all_headers:
            preflight["Access-Control-Allow-Headers"] = ", ".join(allowed_headers)
        if allow_credentials:
            preflight["Access-Control-Allow-Credentials"] = "true"
        self.preflight_headers = preflight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if (
            origin is not None
            and scope["method"] == "OPTIONS"
            and "access-control-request-method" in headers
        ):
            await self.preflight_response(headers)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.add_cors_headers(MutableHeaders(scope=message), origin)
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def is_allowed_origin(self, origin: str) -> bool:
        """Whether ``origin`` may make cross-origin requests."""
        if self.allow_all_origins or origin in self.allow_origins:
            return True
        return self.allow_origin_regex is not None and bool(
            self.allow_origin_regex.fullmatch(origin)
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        """200 with the allowed methods and headers, or 400 naming what is not allowed."""
        origin = request_headers["origin"]
        headers = dict(self.preflight_headers)
        failures: list[str] = []

        if self.is_allowed_origin(origin):
            if self.echo_origin:
                headers["Access-Control-Allow-Origin"] = origin
        else:
            failures.append("origin")

        if request_headers["access-control-request-method"] not in self.allow_methods:
            failures.append("method")

        requested_headers = request_headers.get("access-control-request-headers")
        if requested_headers is not None:
            if self.allow_all_headers:
                headers["Access-Control-Allow-Headers"] = requested_headers
            elif any(
                name.strip().lower() not in self.allow_headers
                for name in requested_headers.split(",")
                if name.strip()
            ):
                failures.append("headers")

        if request_headers.get("access-control-request-private-network") is not None:
            if self.allow_private_network:
                headers["Access-Control-Allow-Private-Network"] = "true"
            else:
                failures.append("private-network")

        if failures:
            return PlainTextResponse(
                "Disallowed CORS " + ", ".join(failures), status_code=400, headers=headers
            )
        return PlainTextResponse("OK", status_code=200, headers=headers)

    def add_cors_headers(self, headers: MutableHeaders, origin: str | None) -> None:
        """Add the CORS headers for a request from ``origin`` to a response's ``headers``."""
        if origin is not None:
            headers.update(self.simple_headers)
            if self.echo_origin and self.is_allowed_origin(origin):
                headers["Access-Control-Allow-Origin"] = origin
        # Whether and how the response is shared depends on Origin: caches must key on it.
        headers.add_vary_header("Origin")
