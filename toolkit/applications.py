"""``App``: where a request enters toolkit. Starlette's ``Starlette``, on trio.

The app wraps its router in a middleware stack, built once on the first call:

    ServerErrorMiddleware      500s and the debug page (outermost, always)
    user middleware            the ``middleware=`` list, first outermost
    ExceptionMiddleware        HTTPException and registered handlers
    Router                     routes -> endpoint -> response
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, ParamSpec

import trio

from toolkit.concurrency import DEFAULT_THREAD_LIMIT
from toolkit.datastructures import State, URLPath
from toolkit.middleware import Middleware, _MiddlewareFactory
from toolkit.middleware.errors import ServerErrorMiddleware
from toolkit.middleware.exceptions import ExceptionMiddleware
from toolkit.routing import BaseRoute, Router
from toolkit.types import ASGIApp, ExceptionHandler, Lifespan, Receive, Scope, Send

P = ParamSpec("P")


class App:
    """A toolkit application: routes, middleware, exception handlers and a lifespan.

    ``thread_limit`` caps how many worker threads sync endpoints, sync
    background tasks and sync iterators of this app use at once.
    """

    def __init__(
        self,
        debug: bool = False,
        routes: Sequence[BaseRoute] | None = None,
        middleware: Sequence[Middleware] | None = None,
        exception_handlers: Mapping[Any, ExceptionHandler] | None = None,
        lifespan: Lifespan[App] | None = None,
        *,
        thread_limit: int = DEFAULT_THREAD_LIMIT,
    ) -> None:
        self.debug = debug
        self.state = State()
        self.router = Router(routes, lifespan=lifespan)
        self.exception_handlers: dict[Any, ExceptionHandler] = dict(exception_handlers or {})
        self.user_middleware: list[Middleware] = list(middleware or ())
        self.middleware_stack: ASGIApp | None = None
        self.thread_limiter = trio.CapacityLimiter(thread_limit)

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
        app: ASGIApp = self.router.middleware_stack
        for cls, args, kwargs in reversed(middleware):
            app = cls(app, *args, **kwargs)
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
        await stack(scope, receive, send)

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
