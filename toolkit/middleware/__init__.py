"""Middleware: ASGI apps wrapping ASGI apps. ``Middleware`` records one to build later."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from toolkit.types import ASGIApp, Receive, Scope, Send


class _MiddlewareFactory(Protocol):
    def __call__(self, app: ASGIApp, /, *args: Any, **kwargs: Any) -> ASGIApp: ...


class Middleware:
    """A middleware class and its arguments, instantiated when the app builds its stack."""

    def __init__(self, cls: _MiddlewareFactory | type[Any], *args: Any, **kwargs: Any) -> None:
        self.cls = cls
        self.args = args
        self.kwargs = kwargs

    def __iter__(self) -> Iterator[Any]:
        as_tuple = (self.cls, self.args, self.kwargs)
        return iter(as_tuple)

    def __repr__(self) -> str:
        class_name = self.__class__.__name__
        args_strings = [f"{value!r}" for value in self.args]
        option_strings = [f"{key}={value!r}" for key, value in self.kwargs.items()]
        name = getattr(self.cls, "__name__", "")
        args_repr = ", ".join([name, *args_strings, *option_strings])
        return f"{class_name}({args_repr})"


__all__ = ["ASGIApp", "Middleware", "Receive", "Scope", "Send"]
