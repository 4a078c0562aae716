"""Running blocking code from trio: worker threads under the app's capacity limiter."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any, TypeVar

import trio

T = TypeVar("T")

DEFAULT_THREAD_LIMIT = 40

#: The limiter ``run_in_thread`` uses when none is passed; set while toolkit runs
#: a request's background tasks, so they share the app's limiter.
current_thread_limiter: ContextVar[trio.CapacityLimiter | None] = ContextVar(
    "toolkit_thread_limiter", default=None
)


async def run_in_thread(
    func: Callable[..., T], *args: Any, limiter: trio.CapacityLimiter | None = None
) -> T:
    """Call ``func(*args)`` in a worker thread and return its result.

    Without a ``limiter``, the app's (set while toolkit runs its work) or
    trio's default one is used. A thread cannot be interrupted: if the calling
    task is cancelled, trio waits for the call to finish before delivering it.
    """
    if limiter is None:
        limiter = current_thread_limiter.get()
    return await trio.to_thread.run_sync(func, *args, limiter=limiter)


class _Exhausted(Exception):
    """Raised in place of StopIteration, which cannot cross a thread boundary cleanly."""


def _next_or_exhausted(iterator: Iterator[T]) -> T:
    try:
        return next(iterator)
    except StopIteration:
        raise _Exhausted from None


async def iterate_in_thread(
    iterable: Iterable[T], *, limiter: trio.CapacityLimiter | None = None
) -> AsyncIterator[T]:
    """Iterate a blocking iterable, one ``next()`` per worker-thread call."""
    iterator = iter(iterable)
    try:
        while True:
            try:
                yield await trio.to_thread.run_sync(_next_or_exhausted, iterator, limiter=limiter)
            except _Exhausted:
                return
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            # A generator stopped early still gets to run its ``finally``, in a thread as ever.
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(close, limiter=limiter)


def app_thread_limiter(scope: Mapping[str, Any]) -> trio.CapacityLimiter | None:
    """The capacity limiter of the toolkit app serving ``scope``, if any (else trio's default)."""
    limiter: trio.CapacityLimiter | None = getattr(scope.get("app"), "thread_limiter", None)
    return limiter


def is_async_callable(obj: Any) -> bool:
    """True for async functions, partials of them and objects with an async ``__call__``."""
    while isinstance(obj, partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or (
        callable(obj) and inspect.iscoroutinefunction(getattr(obj, "__call__", None))  # noqa: B004
    )
