"""``App``: where a request enters toolkit. Starlette's ``Starlette``, on trio.

Each HTTP request gets a ``RequestScope`` (cancel scope, receiver, children,
background tasks; see toolkit/request_scope.py), inside which the app's
middleware stack runs. The stack is built once, on the first call:

    ServerErrorMiddleware      500s and the debug page (outermost, always)
    user middleware            the ``middleware=`` list, first outermost
    ExceptionMiddleware        HTTPException and registered handlers
    Router                     routes -> endpoint -> response

``lifespan`` scopes run the user's lifespan around the app's task nursery
(toolkit/lifespan.py, toolkit/app_tasks.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

import trio

from toolkit.app_tasks import AppTasks, TaskErrorHandler
from toolkit.background import run_background
from toolkit.concurrency import DEFAULT_THREAD_LIMIT
from toolkit.datastructures import State, URLPath
from toolkit.exceptions import HTTPException
from toolkit.lifespan import run_lifespan
from toolkit.middleware import Middleware, _MiddlewareFactory
from toolkit.middleware.errors import ServerErrorMiddleware
from toolkit.middleware.exceptions import ExceptionMiddleware
from toolkit.receiver import BODY_TIMEOUT_DETAIL
from toolkit.request_scope import SCOPE_KEY, RequestScope
from toolkit.routing import BaseRoute, Router
from toolkit.types import ASGIApp, ExceptionHandler, Lifespan, Receive, Scope, Send
from toolkit.websockets import DEFAULT_DISCONNECT_GRACE, DEFAULT_MAX_MESSAGE_SIZE

logger = logging.getLogger("toolkit")

#: Default request body limit: 16 MiB.
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024
#: Default time for a request body to arrive, from the first read: 60 s.
DEFAULT_BODY_TIMEOUT = 60.0
#: Default grace for app tasks at shutdown: 10 s.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0


class App:
    """A toolkit application: routes, middleware, exception handlers and a lifespan.

    Beyond Starlette's arguments (all keyword-only; routes may override the
    first four, see ``Route``):

    - ``cancel_on_disconnect``: cancel a handler whose client went away
      before its response was complete;
    - ``request_timeout``: seconds before a request is cancelled (504 if
      nothing was sent yet); ``None``, no limit;
    - ``max_body_size``: request body limit in bytes (413); ``None``, none;
    - ``body_timeout``: seconds for the body to arrive once read (408);
    - ``on_task_error(exc, description)``: called, after logging, for every
      failed background or app task;
    - ``shutdown_timeout``: seconds app tasks get at shutdown before cancellation;
    - ``thread_limit``: worker threads this app's sync code may use at once;
    - ``websocket_max_message_size``: incoming WebSocket message limit in bytes
      (larger ones close the session with 1009); ``None``, none;
    - ``websocket_disconnect_grace``: seconds a WebSocket handler told of a
      disconnect gets to clean up before it is cancelled (toolkit/websockets.py).
    """

    def __init__(
        self,
        debug: bool = False,
        routes: Sequence[BaseRoute] | None = None,
        middleware: Sequence[Middleware] | None = None,
        exception_handlers: Mapping[Any, ExceptionHandler] | None = None,
        lifespan: Lifespan[App] | None = None,
        *,
        cancel_on_disconnect: bool = True,
        request_timeout: float | None = None,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
        on_task_error: TaskErrorHandler | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        thread_limit: int = DEFAULT_THREAD_LIMIT,
        websocket_max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        websocket_disconnect_grace: float | None = DEFAULT_DISCONNECT_GRACE,
    ) -> None:
        self.debug = debug
        self.state = State()
        self.router = Router(routes, lifespan=lifespan)
        self.exception_handlers: dict[Any, ExceptionHandler] = dict(exception_handlers or {})
        self.user_middleware: list[Middleware] = list(middleware or ())
        self.middleware_stack: ASGIApp | None = None
        self.thread_limiter = trio.CapacityLimiter(thread_limit)
        self.cancel_on_disconnect = cancel_on_disconnect
        self.request_timeout = request_timeout
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self.on_task_error = on_task_error
        self.shutdown_timeout = shutdown_timeout
        self.tasks = AppTasks(on_task_error)
        self.websocket_max_message_size = websocket_max_message_size
        self.websocket_disconnect_grace = websocket_disconnect_grace
        self._exceptions: ExceptionMiddleware | None = None
        self._server_errors: ServerErrorMiddleware | None = None
        self._defer_request_scope = False

    def build_middleware_stack(self) -> ASGIApp:
        """Wrap the router in the error layers and the user's middleware."""
        error_handler = None
        exception_handlers: dict[Any, ExceptionHandler] = {}
        for key, value in self.exception_handlers.items():
            if key in (500, Exception):
                error_handler = value
            else:
                exception_handlers[key] = value

        middleware = [
            Middleware(ServerErrorMiddleware, handler=error_handler, debug=self.debug),
            *self.user_middleware,
            Middleware(ExceptionMiddleware, handlers=exception_handlers, debug=self.debug),
        ]
        # With no user middleware, nothing runs before the router that could wait: the
        # router enters the request's cancel scope at the route (see RequestScope.run).
        self._defer_request_scope = not self.user_middleware
        app: ASGIApp = self.router.middleware_stack
        for cls, args, kwargs in reversed(middleware):
            app = cls(app, *args, **kwargs)
            if isinstance(app, ExceptionMiddleware):
                self._exceptions = app
            elif isinstance(app, ServerErrorMiddleware):
                self._server_errors = app
        return app

    @property
    def routes(self) -> list[BaseRoute]:
        return self.router.routes

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return self.router.url_path_for(name, **path_params)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        stack = self.middleware_stack
        if stack is None:
            stack = self.middleware_stack = self.build_middleware_stack()
        scope_type = scope["type"]
        if scope_type == "http":
            await self._handle_request(stack, scope, receive, send)
        elif scope_type == "lifespan":
            await run_lifespan(
                self,
                self.router.lifespan_context,
                scope,
                receive,
                send,
                tasks=self.tasks,
                shutdown_timeout=self.shutdown_timeout,
            )
        else:
            await stack(scope, receive, send)

    async def _handle_request(
        self, stack: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """One HTTP request, from its scope opening to its last background task."""
        request_scope = RequestScope(
            scope,
            receive,
            send,
            self.request_timeout,
            self.cancel_on_disconnect,
            self.max_body_size,
            self.body_timeout,
        )
        scope[SCOPE_KEY] = request_scope
        try:
            await self._run_request(stack, scope, request_scope)
        finally:
            # The server's stream holds the scope and the request scope holds the stream's
            # send/receive: part them, or every request is left to the garbage collector.
            del scope[SCOPE_KEY]

    async def _run_request(self, stack: ASGIApp, scope: Scope, request_scope: RequestScope) -> None:
        try:
            app_call = stack(scope, request_scope.receiver, request_scope.send)
            if request_scope.enters_now(defer=self._defer_request_scope):
                await request_scope.run(app_call)
            else:
                await app_call
        finally:
            if request_scope.needs_closing:
                await request_scope.close()
        if request_scope.child_error is not None:
            await self._child_failed(scope, request_scope, request_scope.child_error)
        elif request_scope.timed_out is not None:
            await self._timed_out(scope, request_scope, request_scope.timed_out)
        if request_scope.background is not None:
            request_scope.restore_background_context()
            await run_background(request_scope.background, self.thread_limiter, self.on_task_error)

    async def _timed_out(self, scope: Scope, request_scope: RequestScope, status: int) -> None:
        """408 (slow body) or 504 (deadline) through the exception handlers, or a clean end
        to a response already started."""
        method, path = scope["method"], scope["path"]
        if request_scope.response_started:
            logger.warning("Deadline passed while streaming %s %s; response ended", method, path)
            if not request_scope.response_complete:
                try:
                    await request_scope.send({"type": "http.response.body", "body": b""})
                except Exception:
                    logger.debug("Could not end the response cleanly", exc_info=True)
            return
        if status == 408:
            logger.info("Request body too slow for %s %s; answering 408", method, path)
            exc = HTTPException(408, BODY_TIMEOUT_DETAIL)
        else:
            logger.warning("Deadline passed for %s %s; answering 504", method, path)
            exc = HTTPException(504)
        assert self._exceptions is not None
        await self._exceptions.respond(exc, scope, request_scope.receiver, request_scope.send)

    async def _child_failed(
        self, scope: Scope, request_scope: RequestScope, error: BaseException
    ) -> None:
        """Answer a failed ``request.nursery`` child as the handler's own error would be:
        its registered handler, else a 500 and the error raised to the server."""
        receive, send = request_scope.receiver, request_scope.send
        if isinstance(error, Exception) and not request_scope.response_started:
            assert self._exceptions is not None and self._server_errors is not None
            if await self._exceptions.respond(error, scope, receive, send):
                return
            await self._server_errors.respond(error, scope, receive, send)
        raise error

    # -- app-scoped tasks

    def start_soon(
        self, async_fn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> None:
        """Run ``async_fn(*args)`` in the app's nursery: it may outlive the request.

        Failures are logged and passed to ``on_task_error``; at shutdown the
        task gets ``shutdown_timeout`` seconds, then is cancelled.
        """
        self.tasks.start_soon(async_fn, *args, name=name)

    async def start(
        self, async_fn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> Any:
        """Start an app task; return the value it passes to ``task_status.started()``."""
        return await self.tasks.start(async_fn, *args, name=name)

    def add_middleware(
        self, middleware_class: _MiddlewareFactory | type[Any], *args: Any, **kwargs: Any
    ) -> None:
        """Add a middleware around everything added before it (the last added is outermost)."""
        if self.middleware_stack is not None:
            raise RuntimeError("Cannot add middleware after an application has started")
        self.user_middleware.insert(0, Middleware(middleware_class, *args, **kwargs))

    def add_exception_handler(
        self, exc_class_or_status_code: int | type[Exception], handler: ExceptionHandler
    ) -> None:
        if self.middleware_stack is not None:
            raise RuntimeError("Cannot add exception handlers after an application has started")
        self.exception_handlers[exc_class_or_status_code] = handler

    def mount(self, path: str, app: ASGIApp, name: str | None = None) -> None:
        self.router.mount(path, app=app, name=name)

    def host(self, host: str, app: ASGIApp, name: str | None = None) -> None:
        self.router.host(host, app=app, name=name)

    def add_route(
        self,
        path: str,
        route: Callable[..., Any],
        methods: Collection[str] | None = None,
        name: str | None = None,
        include_in_schema: bool = True,
    ) -> None:
        self.router.add_route(
            path, route, methods=methods, name=name, include_in_schema=include_in_schema
        )

    def add_websocket_route(
        self, path: str, route: Callable[..., Any], name: str | None = None
    ) -> None:
        self.router.add_websocket_route(path, route, name=name)
