"""``TrustedHostMiddleware``: refuse requests whose ``Host`` header names a host not served here.

A forged ``Host`` poisons every absolute URL the app builds from it (password
reset links, redirects, cache keys). A host outside ``allowed_hosts``, and a
missing or malformed ``Host`` header, get ``400 Invalid host header``; a
WebSocket handshake is refused the same way. With ``www_redirect``, a request
for ``example.com`` is redirected to ``www.example.com`` when only the latter
is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence

from toolkit.datastructures import URL, Headers, parse_host_header
from toolkit.responses import PlainTextResponse, RedirectResponse, Response
from toolkit.types import ASGIApp, Receive, Scope, Send

ENFORCE_DOMAIN_WILDCARD = "Domain wildcard patterns must be like '*.example.com'."


class TrustedHostMiddleware:
    """Serve only the hosts in ``allowed_hosts``: exact names, ``*.example.com`` or ``"*"``.

    A wildcard matches subdomains at any depth, not the bare domain. Lifespan
    scopes pass through.
    """

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: Sequence[str] | None = None,
        www_redirect: bool = True,
    ) -> None:
        if allowed_hosts is None:
            allowed_hosts = ["*"]
        for pattern in allowed_hosts:
            assert "*" not in pattern[1:], ENFORCE_DOMAIN_WILDCARD
            if pattern.startswith("*") and pattern != "*":
                assert pattern.startswith("*."), ENFORCE_DOMAIN_WILDCARD
        self.app = app
        self.allowed_hosts = [pattern.lower() for pattern in allowed_hosts]
        self.allow_any = "*" in allowed_hosts
        self.www_redirect = www_redirect
        self._exact = frozenset(host for host in self.allowed_hosts if not host.startswith("*"))
        self._suffixes = tuple(host[1:] for host in self.allowed_hosts if host.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        parsed = parse_host_header(Headers(scope=scope).get("host"))
        if parsed is not None:
            host = parsed[0].lower()
            if host in self._exact or host.endswith(self._suffixes):
                await self.app(scope, receive, send)
                return
        response: Response
        if parsed is not None and self.www_redirect and "www." + host in self._exact:
            url = URL(scope=scope)
            response = RedirectResponse(url.replace(netloc="www." + url.netloc))
        else:
            response = PlainTextResponse("Invalid host header", status_code=400)
        await reject(response, scope, receive, send)


async def reject(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer an HTTP request or a WebSocket handshake with ``response`` instead of the app.

    A handshake gets it as a denial response where the server supports them,
    else it is closed (code 1008, policy violation) before being accepted.
    """
    extensions = scope.get("extensions") or {}
    if scope["type"] == "websocket" and "websocket.http.response" not in extensions:
        await send({"type": "websocket.close", "code": 1008, "reason": ""})
        return
    await response(scope, receive, send)
