"""Class-based endpoints: one method per HTTP verb."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from toolkit.exceptions import HTTPException
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.routing import as_async_endpoint, serve_endpoint
from toolkit.types import Receive, Scope, Send

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY")


class HTTPEndpoint:
    """Dispatch a request to the method named after its verb (``get``, ``post``...).

    HEAD falls back to ``get``; a verb with no method answers 405 with ``Allow``.
    The class itself is the ASGI app: ``Route("/", MyEndpoint)``.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.scope = scope
        self.receive = receive
        self.send = send
        defined = {method for method in HTTP_METHODS if getattr(self, method.lower(), None)}
        if "GET" in defined:
            defined.add("HEAD")  # served by ``get`` when there is no ``head``
        self._allowed_methods = [method for method in HTTP_METHODS if method in defined]

    def __await__(self) -> Generator[Any, None, None]:
        return self.dispatch().__await__()

    async def dispatch(self) -> None:
        request = Request(self.scope, receive=self.receive, send=self.send)
        name = (
            "get"
            if request.method == "HEAD" and not hasattr(self, "head")
            else request.method.lower()
        )
        # Only verbs are looked up: a method named "SEND" must not reach ``self.send``.
        allowed = request.method in self._allowed_methods
        handler: Any = getattr(self, name) if allowed else self.method_not_allowed
        await serve_endpoint(request, as_async_endpoint(handler))

    async def method_not_allowed(self, request: Request) -> Response:
        """405, through the app's exception handlers when inside an app."""
        headers = {"Allow": ", ".join(self._allowed_methods)}
        if "app" in self.scope:
            raise HTTPException(status_code=405, headers=headers)
        return PlainTextResponse("Method Not Allowed", status_code=405, headers=headers)
