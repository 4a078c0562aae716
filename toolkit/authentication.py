"""Who is making a request, and what they may do: backends, users, credentials and ``requires``.

``AuthenticationMiddleware`` asks an ``AuthenticationBackend`` about each
connection and stores the answer as ``request.user`` and ``request.auth``
(credentials: a list of scope strings). ``@requires("scope")`` then guards an
endpoint: a missing scope is a 403 (or ``status_code``), or a 303 to the
``redirect`` route with ``?next=`` set; a WebSocket is closed instead.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec
from urllib.parse import urlencode

from toolkit.concurrency import is_async_callable
from toolkit.exceptions import HTTPException
from toolkit.requests import HTTPConnection, Request
from toolkit.responses import RedirectResponse

P = ParamSpec("P")

__all__ = [
    "AuthCredentials",
    "AuthenticationBackend",
    "AuthenticationError",
    "BaseUser",
    "SimpleUser",
    "UnauthenticatedUser",
    "has_required_scope",
    "requires",
]


def has_required_scope(conn: HTTPConnection, scopes: Sequence[str]) -> bool:
    """Whether the connection's credentials include every one of ``scopes``."""
    granted = conn.auth.scopes
    return all(scope in granted for scope in scopes)


def requires(
    scopes: str | Sequence[str],
    status_code: int = 403,
    redirect: str | None = None,
) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """Guard an endpoint (sync or async function or method, HTTP or WebSocket) by scopes.

    The endpoint must take a parameter named ``request`` or ``websocket``.
    """
    required = [scopes] if isinstance(scopes, str) else list(scopes)

    def decorator(func: Callable[P, Any]) -> Callable[P, Any]:
        names = list(inspect.signature(func).parameters)
        index = next((i for i, name in enumerate(names) if name in ("request", "websocket")), -1)
        if index < 0:
            raise TypeError(f'No "request" or "websocket" argument on function "{func}"')
        kind = names[index]

        def connection(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            conn = kwargs.get(kind, args[index] if index < len(args) else None)
            if kind == "request":
                assert isinstance(conn, Request), (
                    f"Parameter 'request' must be a Request, not {type(conn).__name__!r}"
                )
            else:
                assert isinstance(conn, HTTPConnection) and conn.scope["type"] == "websocket", (
                    f"Parameter 'websocket' must be a WebSocket, not {type(conn).__name__!r}"
                )
            return conn

        def refusal(request: Request) -> RedirectResponse:
            if redirect is None:
                raise HTTPException(status_code=status_code)
            next_url = f"{request.url_for(redirect)}?{urlencode({'next': str(request.url)})}"
            return RedirectResponse(url=next_url, status_code=303)

        if kind == "websocket":

            @functools.wraps(func)
            async def websocket_wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
                websocket = connection(args, kwargs)
                if has_required_scope(websocket, required):
                    await func(*args, **kwargs)
                else:
                    await websocket.close()

            return websocket_wrapper

        if is_async_callable(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                request = connection(args, kwargs)
                if not has_required_scope(request, required):
                    return refusal(request)
                return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            request = connection(args, kwargs)
            if not has_required_scope(request, required):
                return refusal(request)
            return func(*args, **kwargs)

        return sync_wrapper

    return decorator


class AuthenticationError(Exception):
    """Raised by a backend for credentials that are present but wrong or malformed.

    The middleware answers it with ``on_error`` (by default a 400 with the message).
    """


class AuthenticationBackend:
    """Decides who a connection is. Return ``None`` for "anonymous"."""

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        raise NotImplementedError()


class AuthCredentials:
    """What the connection may do: a list of scope strings."""

    def __init__(self, scopes: Sequence[str] | None = None) -> None:
        self.scopes = [] if scopes is None else list(scopes)


class BaseUser:
    """The interface of ``request.user``."""

    @property
    def is_authenticated(self) -> bool:
        raise NotImplementedError()

    @property
    def display_name(self) -> str:
        raise NotImplementedError()

    @property
    def identity(self) -> str:
        raise NotImplementedError()


class SimpleUser(BaseUser):
    """An authenticated user known by a username."""

    def __init__(self, username: str) -> None:
        self.username = username

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.username

    @property
    def identity(self) -> str:
        return self.username


class UnauthenticatedUser(BaseUser):
    """The user of a connection the backend did not authenticate."""

    @property
    def is_authenticated(self) -> bool:
        return False

    @property
    def display_name(self) -> str:
        return ""

    @property
    def identity(self) -> str:
        return ""
