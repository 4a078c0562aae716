"""The exceptions layer: turns ``HTTPException`` and registered exceptions into responses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from toolkit.concurrency import app_thread_limiter, is_async_callable, run_in_thread
from toolkit.exceptions import HTTPException, WebSocketException
from toolkit.request_scope import SCOPE_KEY, RequestScope, ResponseTracker
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.types import ASGIApp, ExceptionHandler, Receive, Scope, Send

logger = logging.getLogger("toolkit")


class ExceptionMiddleware:
    """Answers exceptions raised below it with the handler registered for them.

    Handlers are looked up by status code (for ``HTTPException``), then along
    the exception's class hierarchy. An exception with no handler, or one
    raised after the response has started, propagates to the server-error layer.
    """

    def __init__(
        self,
        app: ASGIApp,
        handlers: Mapping[Any, ExceptionHandler] | None = None,
        debug: bool = False,
    ) -> None:
        self.app = app
        self.debug = debug
        self._status_handlers: dict[int, ExceptionHandler] = {}
        self._exception_handlers: dict[type[BaseException], ExceptionHandler] = {
            HTTPException: self.http_exception,
            WebSocketException: self.websocket_exception,
        }
        for key, handler in (handlers or {}).items():
            self.add_exception_handler(key, handler)

    def add_exception_handler(
        self, exc_class_or_status_code: int | type[BaseException], handler: ExceptionHandler
    ) -> None:
        if isinstance(exc_class_or_status_code, int):
            self._status_handlers[exc_class_or_status_code] = handler
        else:
            assert issubclass(exc_class_or_status_code, BaseException)
            self._exception_handlers[exc_class_or_status_code] = handler

    def lookup_handler(self, exc: BaseException) -> ExceptionHandler | None:
        """The handler for ``exc``: by status code first, then by class (most specific first)."""
        if isinstance(exc, HTTPException):
            handler = self._status_handlers.get(exc.status_code)
            if handler is not None:
                return handler
        for cls in type(exc).__mro__:
            handler = self._exception_handlers.get(cls)
            if handler is not None:
                return handler
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        tracker: RequestScope | ResponseTracker | None = None
        if scope_type == "http":
            tracker = scope.get(SCOPE_KEY)
            if tracker is None:  # used outside an App: watch the response go by
                tracker = ResponseTracker(send)
                send = tracker.send
        elif scope_type != "websocket":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            handler = self.lookup_handler(exc)
            if handler is None:
                raise
            if tracker is not None:
                if tracker.response_started:
                    raise RuntimeError(
                        "Caught handled exception, but response already started."
                    ) from exc
                await self._respond(handler, exc, scope, receive, send)
            else:
                from toolkit.websockets import SESSION_KEY, WebSocket

                # The session's own WebSocket knows whether it was accepted or closed.
                websocket = scope.pop(SESSION_KEY, None) or WebSocket(scope, receive, send)
                websocket_handler: Any = handler
                response = await websocket_handler(websocket, exc)
                if response is not None:  # an HTTPException before accept: deny the handshake
                    await websocket.send_denial_response(response)

    async def respond(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer ``exc`` with its handler, if it has one (the app uses this for errors it
        meets outside the stack: a deadline's 504, a failed ``request.nursery`` child)."""
        handler = self.lookup_handler(exc)
        if handler is None:
            return False
        await self._respond(handler, exc, scope, receive, send)
        return True

    async def _respond(
        self, handler: ExceptionHandler, exc: Exception, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = Request(scope, receive, send)
        call: Any = handler
        if is_async_callable(call):
            response = await call(request, exc)
        else:
            response = await run_in_thread(call, request, exc, limiter=app_thread_limiter(scope))
        if response is not None:
            await response(scope, receive, send)

    async def http_exception(self, request: Request, exc: Exception) -> Response:
        """The default answer to an ``HTTPException``: its detail as plain text."""
        assert isinstance(exc, HTTPException)
        if exc.status_code in {204, 304}:
            return Response(status_code=exc.status_code, headers=exc.headers)
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)

    async def websocket_exception(self, websocket: Any, exc: Exception) -> None:
        """The default answer to a ``WebSocketException``: close with its code and reason."""
        assert isinstance(exc, WebSocketException)
        await websocket.close(code=exc.code, reason=exc.reason)
