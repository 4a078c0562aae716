"""``AuthenticationMiddleware``: sets ``request.user`` and ``request.auth`` from a backend.

A backend that returns ``None`` leaves the connection anonymous
(``UnauthenticatedUser``, no scopes). One that raises ``AuthenticationError``
(credentials present but malformed or wrong) gets ``on_error``'s response,
by default ``400`` with the error's message; a WebSocket handshake gets it as
a denial response where the server supports them, else it is closed (1008).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from toolkit.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    UnauthenticatedUser,
)
from toolkit.middleware.trustedhost import reject
from toolkit.requests import HTTPConnection
from toolkit.responses import PlainTextResponse, Response
from toolkit.types import ASGIApp, Receive, Scope, Send

ErrorHandler = Callable[[HTTPConnection, AuthenticationError], Response | Awaitable[Response]]


class AuthenticationMiddleware:
    """Authenticate every HTTP request and WebSocket with ``backend``; lifespan passes through.

    ``on_error(conn, exc)`` (sync or async) builds the response to an
    ``AuthenticationError``.
    """

    def __init__(
        self,
        app: ASGIApp,
        backend: AuthenticationBackend,
        on_error: ErrorHandler | None = None,
    ) -> None:
        self.app = app
        self.backend = backend
        self.on_error: ErrorHandler = on_error if on_error is not None else self.default_on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            result = await self.backend.authenticate(conn)
        except AuthenticationError as exc:
            response = self.on_error(conn, exc)
            if inspect.isawaitable(response):
                response = await response
            await reject(response, scope, receive, send)
            return
        if result is None:
            result = AuthCredentials(), UnauthenticatedUser()
        scope["auth"], scope["user"] = result
        await self.app(scope, receive, send)

    @staticmethod
    def default_on_error(conn: HTTPConnection, exc: Exception) -> Response:
        """400, with the error's message as the body."""
        return PlainTextResponse(str(exc), status_code=400)
