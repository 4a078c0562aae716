"""``HTTPSRedirectMiddleware``: send plain ``http`` and ``ws`` requests to ``https`` and ``wss``.

The redirect is a 307, so the method and body are kept; ports 80 and 443 are
dropped from the new URL, any other port is kept. A request whose host cannot
be known (a malformed ``Host`` header, and no server address) gets
``400 Invalid host header``. A WebSocket handshake gets the redirect as a
denial response where the server supports them, else it is closed (1008).
"""

from __future__ import annotations

from toolkit.datastructures import URL, Headers, parse_host_header
from toolkit.middleware.trustedhost import reject
from toolkit.responses import PlainTextResponse, RedirectResponse, Response
from toolkit.types import ASGIApp, Receive, Scope, Send

_SECURE_SCHEMES = {"http": "https", "ws": "wss"}


class HTTPSRedirectMiddleware:
    """Redirect every ``http``/``ws`` request to its ``https``/``wss`` twin; lifespan passes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secure_scheme = _SECURE_SCHEMES.get(scope.get("scheme", ""))
        if scope["type"] not in ("http", "websocket") or secure_scheme is None:
            await self.app(scope, receive, send)
            return
        url = URL(scope=scope)
        host_header = Headers(scope=scope).get("host")
        # A malformed Host header is an error, not a reason to fall back to the server address.
        netloc = url.netloc if host_header is None else host_header
        parsed = parse_host_header(netloc) if netloc else None
        response: Response
        if parsed is None:
            response = PlainTextResponse("Invalid host header", status_code=400)
        else:
            host, port = parsed
            netloc = host if port in (None, 80, 443) else f"{host}:{port}"
            response = RedirectResponse(url.replace(scheme=secure_scheme, netloc=netloc))
        await reject(response, scope, receive, send)
