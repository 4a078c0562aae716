"""Routing: match a request's path (and host) to an endpoint, and build URLs back from names.

A ``Router`` keeps Starlette's semantics (routes are tried in order, the first
full match wins, a path match with the wrong method answers 405), but it does
not try every route's regex: an index built from the routes' literal prefixes
narrows each lookup to the few routes that can match, in their original order.
"""

from __future__ import annotations

import dis
import enum
import functools
import inspect
import math
import re
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, NamedTuple, TypeVar

import trio

from toolkit.concurrency import app_thread_limiter, is_async_callable, run_in_thread
from toolkit.convertors import (
    CONVERTOR_TYPES,
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    StringConvertor,
    UUIDConvertor,
)
from toolkit.datastructures import URL, Headers, URLPath, parse_host_header
from toolkit.exceptions import HTTPException
from toolkit.lifespan import run_lifespan
from toolkit.middleware import Middleware
from toolkit.request_scope import SCOPE_KEY, UNSET, RequestScope
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, RedirectResponse, Response
from toolkit.types import ASGIApp, Lifespan, Receive, Scope, Send

T = TypeVar("T")


class NoMatchFound(Exception):
    """``url_path_for`` found no route with that name and those parameters."""

    def __init__(self, name: str, path_params: Mapping[str, Any]) -> None:
        params = ", ".join(sorted(path_params))
        super().__init__(f'No route exists for name "{name}" and params "{params}".')


class Match(enum.Enum):
    NONE = 0
    PARTIAL = 1  # the path matches but the method does not
    FULL = 2


def get_route_path(scope: Scope) -> str:
    """The part of the path the router matches: ``path`` without the ``root_path`` prefix."""
    path: str = scope["path"]
    root_path = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    if path[len(root_path)] == "/":
        return path[len(root_path) :]
    return path


# ----------------------------------------------------------------------------- endpoint wrappers


def request_response(func: Callable[[Request], Awaitable[Response] | Response]) -> ASGIApp:
    """Wrap ``endpoint(request) -> response`` as an ASGI app; sync endpoints run in a thread."""
    async_endpoint = as_async_endpoint(func)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await serve_endpoint(Request(scope, receive, send), async_endpoint)

    return app


def as_async_endpoint(
    func: Callable[[Request], Awaitable[Response] | Response],
) -> Callable[[Request], Awaitable[Response]]:
    """``func`` itself if it is async, else an async function calling it in a worker thread."""
    if is_async_callable(func):
        return func  # type: ignore[return-value]

    sync_func: Callable[[Request], Response] = func  # type: ignore[assignment]

    async def in_thread(request: Request) -> Response:
        return await run_in_thread(sync_func, request, limiter=app_thread_limiter(request.scope))

    return in_thread


async def serve_endpoint(
    request: Request, endpoint: Callable[[Request], Awaitable[Response]]
) -> None:
    """Answer ``request`` with the response ``endpoint`` returns, as routed endpoints do.

    Inside an ``App``, ``request.nursery``'s children are joined once the
    response is sent (a failing child cancels the request, and the app answers
    its error once the request scope has closed), and the response's
    background tasks are handed to the request scope; a parsed form's files
    are closed whatever happened.
    """
    scope, receive, send = request.scope, request._receive, request._send
    request_scope: RequestScope | None = scope.get(SCOPE_KEY)
    try:
        response = await endpoint(request)
        if request_scope is None:
            await response(scope, receive, send)
        elif request_scope.deferred and (
            type(response).send_response is not Response.send_response or request_scope.has_children
        ):
            # An endpoint that cannot wait ran outside the cancel scope (Route.never_waits);
            # a streamed body or children can wait: they run inside it.
            await request_scope.run(_send_and_join(response, request_scope, scope, receive, send))
        else:
            await response.send_response(scope, receive, send)
    except BaseException:
        if request_scope is not None:
            request_scope.cancel_children()  # as a failing nursery body cancels its children
        raise
    finally:
        if request_scope is not None and request_scope.has_children:
            await request_scope.join_children()
        if request._form is not None:
            # Uploaded files are closed (and their temp files removed) whatever happened.
            with trio.CancelScope(shield=True):
                await request.close()
    if request_scope is not None and response.background is not None:
        request_scope.defer(response.background)


async def _send_and_join(
    response: Response, request_scope: RequestScope, scope: Scope, receive: Receive, send: Send
) -> None:
    await response.send_response(scope, receive, send)
    await request_scope.join_children()


def cannot_wait(func: Callable[..., Any]) -> bool:
    """Whether calling ``func`` can never wait: an ``async def`` whose own code has no
    ``await``, ``async for`` or ``async with`` (such a coroutine cannot be suspended,
    so there is nothing to cancel while it runs)."""
    while isinstance(func, functools.partial):
        func = func.func
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    if code is None or not inspect.iscoroutinefunction(func):
        return False
    return not any(instruction.opname in _WAITING_OPCODES for instruction in dis.Bytecode(code))


# The opcodes of await, async with and async for (and what a suspension compiles to).
_WAITING_OPCODES = frozenset(
    {"GET_AWAITABLE", "BEFORE_ASYNC_WITH", "GET_AITER", "GET_ANEXT", "SEND", "YIELD_VALUE"}
)


def websocket_session(func: Callable[[Any], Awaitable[None]]) -> ASGIApp:
    """Wrap ``endpoint(websocket)`` as an ASGI app running it as a session (``run_session``)."""
    from toolkit.websockets import WebSocket, run_session

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await run_session(WebSocket(scope, receive=receive, send=send), func)

    return app


def get_name(endpoint: Callable[..., Any]) -> str:
    """A route's default name: the endpoint's function or class name."""
    return getattr(endpoint, "__name__", endpoint.__class__.__name__)


def _is_plain_function(endpoint: Any) -> bool:
    """Functions and methods (also behind partials) are endpoints; anything else is an ASGI app."""
    while isinstance(endpoint, functools.partial):
        endpoint = endpoint.func
    return inspect.isfunction(endpoint) or inspect.ismethod(endpoint)


def _wrap_middleware(app: ASGIApp, middleware: Sequence[Middleware] | None) -> ASGIApp:
    """Apply ``middleware`` so that the first in the list is outermost."""
    for cls, args, kwargs in reversed(middleware or ()):
        app = cls(app, *args, **kwargs)
    return app


# ----------------------------------------------------------------------------- path compilation

PARAM_REGEX = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-zA-Z_][a-zA-Z0-9_]*)?}")


def compile_path(path: str) -> tuple[re.Pattern[str], str, dict[str, Convertor[Any]]]:
    """Compile a path (or host) template such as ``/users/{id:int}``.

    Returns the regex that matches it, the format string that rebuilds it
    (``/users/{id}``) and the convertor of each parameter.
    """
    is_host = not path.startswith("/")
    path_regex = "^"
    path_format = ""
    duplicated_params = set()
    idx = 0
    param_convertors: dict[str, Convertor[Any]] = {}
    for match in PARAM_REGEX.finditer(path):
        param_name, convertor_type = match.groups("str")
        convertor_type = convertor_type.lstrip(":")
        if convertor_type not in CONVERTOR_TYPES:
            raise ValueError(f"Unknown path convertor '{convertor_type}'")
        convertor = CONVERTOR_TYPES[convertor_type]
        path_regex += re.escape(path[idx : match.start()])
        path_regex += f"(?P<{param_name}>{convertor.regex})"
        path_format += path[idx : match.start()]
        path_format += "{" + param_name + "}"
        if param_name in param_convertors:
            duplicated_params.add(param_name)
        param_convertors[param_name] = convertor
        idx = match.end()

    if duplicated_params:
        names = ", ".join(sorted(duplicated_params))
        ending = "s" if len(duplicated_params) > 1 else ""
        raise ValueError(f"Duplicated param name{ending} {names} at path {path}")

    if is_host:
        # Match the host name regardless of any port in the Host header.
        hostname = path[idx:].split(":")[0]
        path_regex += re.escape(hostname) + "$"
    else:
        path_regex += re.escape(path[idx:]) + "$"
    path_format += path[idx:]
    return re.compile(path_regex), path_format, param_convertors


def replace_params(
    path: str, param_convertors: Mapping[str, Convertor[Any]], path_params: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Fill ``{name}`` placeholders of ``path``; return it and the parameters left over."""
    for key, value in list(path_params.items()):
        if "{" + key + "}" in path:
            convertor = param_convertors[key]
            path = path.replace("{" + key + "}", convertor.to_string(value))
            path_params.pop(key)
    return path, path_params


def _convert_params(
    match: re.Match[str], param_convertors: Mapping[str, Convertor[Any]]
) -> dict[str, Any] | None:
    """Convert the matched parameters; ``None`` if a convertor rejects its value."""
    params: dict[str, Any] = match.groupdict()
    try:
        for key, value in params.items():
            params[key] = param_convertors[key].convert(value)
    except ValueError:
        return None
    return params


# ------------------------------------------------------------------------- request scope options

ScopeOptions = tuple[Any, Any, Any]


def _scope_options(
    timeout: Any, cancel_on_disconnect: Any, max_body_size: Any
) -> ScopeOptions | None:
    """A route's overrides of the app's request settings, or ``None`` if it has none."""
    if timeout is UNSET and cancel_on_disconnect is UNSET and max_body_size is UNSET:
        return None
    return (timeout, cancel_on_disconnect, max_body_size)


async def _handle_with_options(
    app: ASGIApp, options: ScopeOptions, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run a route's app under its overrides of the request scope's settings."""
    request_scope: RequestScope | None = scope.get(SCOPE_KEY)
    if request_scope is None:
        await app(scope, receive, send)
    else:
        await request_scope.run_route(options, app, scope, receive, send)


def _endpoint_url_path(
    route: Route | WebSocketRoute,
    name: str,
    path_params: dict[str, Any],
    protocol: Literal["http", "websocket"],
) -> URLPath:
    """The path of an endpoint route called ``name``, given exactly its parameters."""
    if name != route.name or set(path_params) != set(route.param_convertors):
        raise NoMatchFound(name, path_params)
    path, remaining_params = replace_params(route.path_format, route.param_convertors, path_params)
    assert not remaining_params
    return URLPath(path=path, protocol=protocol)


# ----------------------------------------------------------------------------- routes


class BaseRoute:
    """Something a router can try: it matches a scope, handles it and builds URLs."""

    #: Whether handling it can never wait for anything but the server (see ``Route``).
    never_waits = False

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raise NotImplementedError()

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NotImplementedError()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Use the route on its own, as an ASGI app: not matching answers 404."""
        match, child_scope = self.matches(scope)
        if match is Match.NONE:
            if scope["type"] == "http":
                response = PlainTextResponse("Not Found", status_code=404)
                await response(scope, receive, send)
            elif scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1000, "reason": ""})
            return
        scope.update(child_scope)
        await self.handle(scope, receive, send)

    def _index_shape(self) -> RouteShape:
        """What the router's index may assume about the paths this route matches."""
        return ANY_SHAPE


class RouteShape(NamedTuple):
    """The paths a route can match, as far as the router's index is concerned."""

    segment: str | None  # the literal first segment of every such path; None: any
    static_path: str | None  # the only path it matches, when it has no parameters
    min_slashes: int
    max_slashes: float


ANY_SHAPE = RouteShape(None, None, 0, math.inf)

#: Convertors whose values never contain a slash, so a template's slashes are all its path's.
_SLASH_FREE_CONVERTORS = (StringConvertor, IntegerConvertor, FloatConvertor, UUIDConvertor)


def _template_shape(
    path: str, convertors: Mapping[str, Convertor[Any]], prefix: bool
) -> RouteShape:
    """The shape of a route template; ``prefix`` for a mount (more path may follow)."""
    segment = _literal_first_segment(path) if path else None
    slashes = path.count("/")
    if prefix:
        return RouteShape(segment, None, slashes + 1, math.inf)
    if not convertors:
        return RouteShape(segment, path, slashes, slashes)
    if all(type(convertor) in _SLASH_FREE_CONVERTORS for convertor in convertors.values()):
        return RouteShape(segment, None, slashes, slashes)
    return RouteShape(segment, None, slashes, math.inf)


def _first_segment(path: str) -> str:
    """``"/users/42"`` -> ``"users"``: the key of the router's index."""
    end = path.find("/", 1)
    return path[1:] if end == -1 else path[1:end]


def _literal_first_segment(path: str) -> str | None:
    """The first segment of a route template, or ``None`` if it holds a parameter."""
    segment = _first_segment(path)
    return None if "{" in segment else segment


class Route(BaseRoute):
    """An HTTP endpoint at a path, for some methods.

    ``endpoint`` is a function or method taking the request and returning a
    response (sync ones run in a worker thread), or any ASGI app such as an
    ``HTTPEndpoint`` class.

    ``timeout`` (seconds, ``None`` for no limit), ``cancel_on_disconnect``
    and ``max_body_size`` (bytes, ``None`` for no limit) override the app's
    settings for this route; left out, the app's apply.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Collection[str] | None = None,
        name: str | None = None,
        include_in_schema: bool = True,
        middleware: Sequence[Middleware] | None = None,
        timeout: float | None = UNSET,
        cancel_on_disconnect: bool = UNSET,
        max_body_size: int | None = UNSET,
    ) -> None:
        assert path.startswith("/"), "Routed paths must start with '/'"
        self.path = path
        self.endpoint = endpoint
        self.name = get_name(endpoint) if name is None else name
        self.include_in_schema = include_in_schema

        if _is_plain_function(endpoint):
            self.app = request_response(endpoint)
            if methods is None:
                methods = ["GET"]
        else:
            self.app = endpoint
        self.app = _wrap_middleware(self.app, middleware)

        if methods is None:
            self.methods: set[str] | None = None
        else:
            self.methods = {method.upper() for method in methods}
            if "GET" in self.methods:
                self.methods.add("HEAD")

        self.path_regex, self.path_format, self.param_convertors = compile_path(path)
        # A path without parameters is compared as a string, without the regex.
        self._static_path = None if self.param_convertors else path
        self.scope_options = _scope_options(timeout, cancel_on_disconnect, max_body_size)
        # An endpoint that cannot wait needs no cancel scope around its call.
        self.never_waits = (
            _is_plain_function(endpoint)
            and not middleware
            and self.scope_options is None
            and cannot_wait(endpoint)
        )

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        route_path = get_route_path(scope)
        if self._static_path is not None:
            if route_path != self._static_path:
                return Match.NONE, {}
            child_scope: Scope = {"endpoint": self.endpoint}
            if "path_params" not in scope:
                child_scope["path_params"] = {}
        else:
            match = self.path_regex.match(route_path)
            if match is None:
                return Match.NONE, {}
            matched_params = _convert_params(match, self.param_convertors)
            if matched_params is None:
                return Match.NONE, {}
            outer_params = scope.get("path_params")
            if outer_params:
                matched_params = {**outer_params, **matched_params}
            child_scope = {"endpoint": self.endpoint, "path_params": matched_params}
        if self.methods and scope["method"] not in self.methods:
            return Match.PARTIAL, child_scope
        return Match.FULL, child_scope

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return _endpoint_url_path(self, name, path_params, protocol="http")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            headers = {"Allow": ", ".join(sorted(self.methods))}
            if "app" in scope:
                raise HTTPException(status_code=405, headers=headers)
            response = PlainTextResponse("Method Not Allowed", status_code=405, headers=headers)
            await response(scope, receive, send)
            return
        if self.scope_options is None:
            await self.app(scope, receive, send)
        else:
            await _handle_with_options(self.app, self.scope_options, scope, receive, send)

    def _index_shape(self) -> RouteShape:
        if type(self).matches is not Route.matches:
            return ANY_SHAPE  # a subclass matching its own way: try it on every path
        return _template_shape(self.path, self.param_convertors, prefix=False)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Route)
            and self.path == other.path
            and self.endpoint == other.endpoint
            and self.methods == other.methods
        )

    __hash__ = BaseRoute.__hash__

    def __repr__(self) -> str:
        methods = sorted(self.methods or [])
        return f"{type(self).__name__}(path={self.path!r}, name={self.name!r}, methods={methods!r})"


class WebSocketRoute(BaseRoute):
    """A WebSocket endpoint at a path: a function taking the session, or an ASGI app."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        name: str | None = None,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        assert path.startswith("/"), "Routed paths must start with '/'"
        self.path = path
        self.endpoint = endpoint
        self.name = get_name(endpoint) if name is None else name
        self.app = websocket_session(endpoint) if _is_plain_function(endpoint) else endpoint
        self.app = _wrap_middleware(self.app, middleware)
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "websocket":
            return Match.NONE, {}
        match = self.path_regex.match(get_route_path(scope))
        if match is None:
            return Match.NONE, {}
        matched_params = _convert_params(match, self.param_convertors)
        if matched_params is None:
            return Match.NONE, {}
        path_params = {**scope.get("path_params", {}), **matched_params}
        return Match.FULL, {"endpoint": self.endpoint, "path_params": path_params}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return _endpoint_url_path(self, name, path_params, protocol="websocket")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def _index_shape(self) -> RouteShape:
        if type(self).matches is not WebSocketRoute.matches:
            return ANY_SHAPE
        # Compared by regex, never by string: not a static path for the index.
        return _template_shape(self.path, self.param_convertors, prefix=False)._replace(
            static_path=None
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, WebSocketRoute)
            and self.path == other.path
            and self.endpoint == other.endpoint
        )

    __hash__ = BaseRoute.__hash__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, name={self.name!r})"


class Mount(BaseRoute):
    """Everything under a path prefix goes to ``app`` (or to a router over ``routes``)."""

    def __init__(
        self,
        path: str,
        app: ASGIApp | None = None,
        routes: Sequence[BaseRoute] | None = None,
        name: str | None = None,
        *,
        middleware: Sequence[Middleware] | None = None,
        timeout: float | None = UNSET,
        cancel_on_disconnect: bool = UNSET,
        max_body_size: int | None = UNSET,
    ) -> None:
        assert path == "" or path.startswith("/"), "Routed paths must start with '/'"
        assert app is not None or routes is not None, (
            "Either 'app=...', or 'routes=' must be specified"
        )
        self.path = path.rstrip("/")
        if app is not None:
            self._base_app: ASGIApp = app
        else:
            self._base_app = Router(routes=routes)
        self.app = _wrap_middleware(self._base_app, middleware)
        self.name = name
        self.path_regex, self.path_format, self.param_convertors = compile_path(
            self.path + "/{path:path}"
        )
        self.scope_options = _scope_options(timeout, cancel_on_disconnect, max_body_size)

    @property
    def routes(self) -> list[BaseRoute]:
        return getattr(self._base_app, "routes", [])

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        root_path = scope.get("root_path", "")
        route_path = get_route_path(scope)
        match = self.path_regex.match(route_path)
        if match is None:
            return Match.NONE, {}
        matched_params = _convert_params(match, self.param_convertors)
        if matched_params is None:
            return Match.NONE, {}
        remaining_path = "/" + matched_params.pop("path")
        matched_path = route_path[: -len(remaining_path)]
        path_params = {**scope.get("path_params", {}), **matched_params}
        child_scope = {
            "path_params": path_params,
            # The root path of the whole app, kept for base_url and url_for.
            "app_root_path": scope.get("app_root_path", root_path),
            "root_path": root_path + matched_path,
            "endpoint": self.app,
        }
        return Match.FULL, child_scope

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        if any(key not in path_params for key in self.param_convertors if key != "path"):
            raise NoMatchFound(name, path_params)  # never a URL with "{param}" left in it
        if self.name is not None and name == self.name and "path" in path_params:
            # A URL to a path inside the mounted app, e.g. a static file.
            path_params["path"] = path_params["path"].lstrip("/")
            path, remaining_params = replace_params(
                self.path_format, self.param_convertors, path_params
            )
            if not remaining_params:
                return URLPath(path=path)
        elif self.name is None or name.startswith(self.name + ":"):
            remaining_name = name if self.name is None else name[len(self.name) + 1 :]
            inner_path = path_params.get("path")
            path_params["path"] = ""
            path_prefix, remaining_params = replace_params(
                self.path_format, self.param_convertors, path_params
            )
            if inner_path is not None:
                remaining_params["path"] = inner_path
            for route in self.routes:
                try:
                    url = route.url_path_for(remaining_name, **remaining_params)
                except NoMatchFound:
                    continue
                return URLPath(path=path_prefix.rstrip("/") + str(url), protocol=url.protocol)
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.scope_options is None:
            await self.app(scope, receive, send)
        else:
            await _handle_with_options(self.app, self.scope_options, scope, receive, send)

    def _index_shape(self) -> RouteShape:
        if type(self).matches is not Mount.matches:
            return ANY_SHAPE
        return _template_shape(self.path, {}, prefix=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mount) and self.path == other.path and self.app == other.app

    __hash__ = BaseRoute.__hash__

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={self.path!r}, name={self.name or ''!r}, app={self.app!r})"
        )


class Host(BaseRoute):
    """Requests whose ``Host`` header matches a pattern such as ``{subdomain}.example.org``."""

    def __init__(self, host: str, app: ASGIApp, name: str | None = None) -> None:
        assert not host.startswith("/"), "Host must not start with '/'"
        self.host = host
        self.app = app
        self.name = name
        self.host_regex, self.host_format, self.param_convertors = compile_path(host)

    @property
    def routes(self) -> list[BaseRoute]:
        return getattr(self.app, "routes", [])

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        parsed = parse_host_header(Headers(scope=scope).get("host"))
        if parsed is None:
            return Match.NONE, {}
        match = self.host_regex.match(parsed[0].lower())
        if match is None:
            return Match.NONE, {}
        matched_params = _convert_params(match, self.param_convertors)
        if matched_params is None:
            return Match.NONE, {}
        path_params = {**scope.get("path_params", {}), **matched_params}
        return Match.FULL, {"path_params": path_params, "endpoint": self.app}

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        if any(key not in path_params for key in self.param_convertors):
            raise NoMatchFound(name, path_params)  # never a host with "{param}" left in it
        if self.name is not None and name == self.name and "path" in path_params:
            path = path_params.pop("path")
            host, remaining_params = replace_params(
                self.host_format, self.param_convertors, path_params
            )
            if not remaining_params:
                return URLPath(path=path, host=host)
        elif self.name is None or name.startswith(self.name + ":"):
            remaining_name = name if self.name is None else name[len(self.name) + 1 :]
            host, remaining_params = replace_params(
                self.host_format, self.param_convertors, path_params
            )
            for route in self.routes:
                try:
                    url = route.url_path_for(remaining_name, **remaining_params)
                except NoMatchFound:
                    continue
                return URLPath(path=str(url), protocol=url.protocol, host=host)
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Host) and self.host == other.host and self.app == other.app

    __hash__ = BaseRoute.__hash__

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(host={self.host!r}, name={self.name or ''!r}, app={self.app!r})"
        )


# ----------------------------------------------------------------------------- the router


class _RouteIndex:
    """Which routes can match a path, in their original order, found by dict look-ups.

    Each route declares its *shape*: the literal first segment of its paths
    (if any), its exact path if it has no parameters, and how many slashes its
    paths can have. A static path finds the routes that can match it exactly;
    any other path finds, by its first segment and slash count, the dynamic
    routes that can match it. Routes of unknown shape (hosts, custom routes)
    are tried for every path. The lists are built once per shape and cached.
    """

    #: How many (segment, slash count) shapes are cached; paths past it are still routed.
    MAX_CACHED_SHAPES = 4096

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._entries: list[tuple[int, BaseRoute, RouteShape]] = []
        self._segments: set[str] = set()
        statics: dict[str, list[tuple[int, BaseRoute]]] = {}
        for position, route in enumerate(routes):
            shape = route._index_shape()
            if shape.static_path is not None:
                statics.setdefault(shape.static_path, []).append((position, route))
                continue
            self._entries.append((position, route, shape))
            if shape.segment is not None:
                self._segments.add(shape.segment)
        self._shapes: dict[tuple[str | None, int], tuple[BaseRoute, ...]] = {}
        self.static = {
            path: self._merge(found, self._dynamic(_first_segment(path), path.count("/")))
            for path, found in statics.items()
        }

    def _dynamic(self, segment: str | None, slashes: int) -> list[tuple[int, BaseRoute]]:
        """The non-static routes that can match a path of this first segment and slash count."""
        return [
            (position, route)
            for position, route, shape in self._entries
            if (shape.segment is None or shape.segment == segment)
            and shape.min_slashes <= slashes <= shape.max_slashes
        ]

    @staticmethod
    def _merge(*groups: list[tuple[int, BaseRoute]]) -> tuple[BaseRoute, ...]:
        entries = {position: route for group in groups for position, route in group}
        return tuple(entries[position] for position in sorted(entries))

    def candidates(self, route_path: str) -> tuple[BaseRoute, ...]:
        found = self.static.get(route_path)
        if found is not None:
            return found
        segment: str | None = _first_segment(route_path)
        if segment not in self._segments:
            segment = None
        key = (segment, route_path.count("/"))
        found = self._shapes.get(key)
        if found is None:
            found = self._merge(self._dynamic(*key))
            if len(self._shapes) < self.MAX_CACHED_SHAPES:
                self._shapes[key] = found
        return found


class _RouteList(list[BaseRoute]):
    """The router's list of routes: any change to it makes the router rebuild its index."""

    def __init__(self, routes: Iterable[BaseRoute], on_change: Callable[[], None]) -> None:
        super().__init__(routes)
        self._on_change = on_change

    def _changed(method: Callable[..., T]) -> Callable[..., T]:  # type: ignore[misc]
        @functools.wraps(method)
        def wrapper(self: _RouteList, *args: Any, **kwargs: Any) -> T:
            result = method(self, *args, **kwargs)
            self._on_change()
            return result

        return wrapper

    append = _changed(list.append)
    extend = _changed(list.extend)
    insert = _changed(list.insert)
    remove = _changed(list.remove)
    pop = _changed(list.pop)
    clear = _changed(list.clear)
    sort = _changed(list.sort)
    reverse = _changed(list.reverse)
    __setitem__ = _changed(list.__setitem__)
    __delitem__ = _changed(list.__delitem__)
    __iadd__ = _changed(list.__iadd__)
    __imul__ = _changed(list.__imul__)
    del _changed


async def _handle(route: BaseRoute, scope: Scope, receive: Receive, send: Send) -> None:
    """Let ``route`` handle the request, inside the request's cancel scope if the app
    left entering it to the router (``RequestScope.run``) and the route may wait."""
    request_scope: RequestScope | None = scope.get(SCOPE_KEY)
    if request_scope is not None and request_scope.deferred and not route.never_waits:
        await request_scope.run(route.handle(scope, receive, send))
    else:
        await route.handle(scope, receive, send)


@asynccontextmanager
async def _no_lifespan(app: object) -> AsyncIterator[None]:
    """The lifespan of a router given none: nothing to start or stop."""
    yield


class Router:
    """An ASGI app that dispatches to the first matching route (404/405 otherwise)."""

    def __init__(
        self,
        routes: Sequence[BaseRoute] | None = None,
        redirect_slashes: bool = True,
        default: ASGIApp | None = None,
        lifespan: Lifespan[Any] | None = None,
        *,
        middleware: Sequence[Middleware] | None = None,
    ) -> None:
        self._routes = _RouteList(routes or (), self._invalidate_index)
        self._index: _RouteIndex | None = None
        self.redirect_slashes = redirect_slashes
        self.default = self.not_found if default is None else default
        self.lifespan_context: Callable[[Any], AbstractAsyncContextManager[Any]] = (
            _no_lifespan if lifespan is None else _as_context_factory(lifespan)
        )
        self.middleware_stack = _wrap_middleware(self.app, middleware)

    @property
    def routes(self) -> list[BaseRoute]:
        return self._routes

    @routes.setter
    def routes(self, routes: Iterable[BaseRoute]) -> None:
        self._routes = _RouteList(routes, self._invalidate_index)
        self._index = None

    def _invalidate_index(self) -> None:
        self._index = None

    async def not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        """No route matched: 404 (through the app's handlers when inside an App)."""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
            return
        if "app" in scope:
            raise HTTPException(status_code=404)
        response = PlainTextResponse("Not Found", status_code=404)
        await response(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        """The path of the route called ``name`` (``mount:name`` inside named mounts)."""
        for route in self._routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                pass
        raise NoMatchFound(name, path_params)

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the lifespan context across ``lifespan.startup`` .. ``lifespan.shutdown``."""
        await run_lifespan(scope.get("app"), self.lifespan_context, scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.middleware_stack(scope, receive, send)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch ``scope`` to its route."""
        scope_type = scope["type"]
        assert scope_type in ("http", "websocket", "lifespan")
        if "router" not in scope:
            scope["router"] = self
        if scope_type == "lifespan":
            await self.lifespan(scope, receive, send)
            return

        index = self._index
        if index is None:
            index = self._index = _RouteIndex(self._routes)
        route_path = get_route_path(scope)

        partial: BaseRoute | None = None
        partial_scope: Scope = {}
        for route in index.candidates(route_path):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                await _handle(route, scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope

        if partial is not None:
            scope.update(partial_scope)
            await _handle(partial, scope, receive, send)
            return

        if scope_type == "http" and self.redirect_slashes and route_path != "/":
            redirect_scope = dict(scope)
            if route_path.endswith("/"):
                redirect_scope["path"] = redirect_scope["path"].rstrip("/")
            else:
                redirect_scope["path"] = redirect_scope["path"] + "/"
            for route in index.candidates(get_route_path(redirect_scope)):
                match, _ = route.matches(redirect_scope)
                if match is not Match.NONE:
                    response = RedirectResponse(url=str(URL(scope=redirect_scope)))
                    await response(scope, receive, send)
                    return

        await self.default(scope, receive, send)

    def mount(self, path: str, app: ASGIApp, name: str | None = None) -> None:
        self._routes.append(Mount(path, app=app, name=name))

    def host(self, host: str, app: ASGIApp, name: str | None = None) -> None:
        self._routes.append(Host(host, app=app, name=name))

    def add_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        methods: Collection[str] | None = None,
        name: str | None = None,
        include_in_schema: bool = True,
    ) -> None:
        self._routes.append(
            Route(
                path,
                endpoint=endpoint,
                methods=methods,
                name=name,
                include_in_schema=include_in_schema,
            )
        )

    def add_websocket_route(
        self, path: str, endpoint: Callable[..., Any], name: str | None = None
    ) -> None:
        self._routes.append(WebSocketRoute(path, endpoint=endpoint, name=name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Router) and self.routes == other.routes

    __hash__ = object.__hash__


def _as_context_factory(lifespan: Any) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    """Accept a context-manager factory, or an async generator function (wrapped as one)."""
    if inspect.isasyncgenfunction(lifespan):
        factory: Callable[[Any], AbstractAsyncContextManager[Any]] = asynccontextmanager(lifespan)
        return factory
    if inspect.isgeneratorfunction(lifespan):
        raise TypeError("lifespan must be an async context manager factory, not a generator")
    result: Callable[[Any], AbstractAsyncContextManager[Any]] = lifespan
    return result
