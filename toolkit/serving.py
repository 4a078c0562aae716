"""Run an ASGI app on hypercorn's trio worker from inside the caller's own trio program."""

from __future__ import annotations

import difflib
import inspect
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from hypercorn.utils import LifespanFailureError

from toolkit.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["serve"]

ShutdownTrigger = Callable[[], Awaitable[None]]


async def serve(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    shutdown_trigger: ShutdownTrigger | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    **hypercorn_options: Any,
) -> None:
    """Serve ``app`` over HTTP on ``host:port`` until shut down.

    Use ``url = await nursery.start(serve, app)`` to learn the bound base URL (so ``port=0``
    works). When ``shutdown_trigger`` returns, the server stops accepting, drains in-flight
    requests (up to ``graceful_timeout``), runs lifespan shutdown and ``serve`` returns.
    Without a trigger, SIGINT or SIGTERM does the same when running in the main thread; a
    second signal then stops the program at once. Cancelling ``serve`` stops the server at once.
    Any other keyword sets the hypercorn ``Config`` attribute of that name.
    """
    config = _build_config(host, port, hypercorn_options)
    if shutdown_trigger is None and threading.current_thread() is threading.main_thread():
        shutdown_trigger = _wait_for_stop_signal
    watched_app = _LifespanFailureWatch(app)
    try:
        await hypercorn_serve(
            # hypercorn types messages as TypedDicts; toolkit's ASGI types use plain mappings.
            cast(Any, watched_app),
            config,
            shutdown_trigger=shutdown_trigger,
            task_status=_FirstBindReporter(task_status, watched_app),
            mode="asgi",
        )
    except BaseExceptionGroup as group:
        failure = _sole_exception(group)
        if failure is None:
            raise
    else:
        # hypercorn can lose a lifespan shutdown failure; the watch kept it.
        failure = watched_app.failure
        if failure is None:
            return
    # Raised outside the handler so the real error keeps its own context and traceback.
    raise failure


def _sole_exception(error: BaseException) -> BaseException | None:
    """Return the single leaf of nested one-member exception groups, else None.

    Structured concurrency wraps one failure in a group per nursery it crosses; unwrapping
    lets callers see (and catch) the real error.
    """
    while isinstance(error, BaseExceptionGroup):
        if len(error.exceptions) != 1:
            return None
        error = error.exceptions[0]
    return error


class _LifespanFailureWatch:
    """Passes everything to ``app``, keeping the error hypercorn raised for a lifespan failure.

    hypercorn reports its binds a few scheduling steps before a startup failure stops it, and
    a shutdown failure can be lost to the cancellation that ends its lifespan task; the kept
    error lets ``serve`` report "listening" only for an app that started, and raise either one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.failure: Exception | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watched_send(message: Message) -> None:
            try:
                await send(message)
            except LifespanFailureError as error:
                self.failure = error
                raise

        await self.app(scope, receive, watched_send)


class _FirstBindReporter(trio.TaskStatus[list[str]]):
    """Adapts hypercorn's ``started(binds)`` report to ``started(url)`` for our caller."""

    def __init__(self, task_status: trio.TaskStatus[str], app: _LifespanFailureWatch) -> None:
        self._task_status = task_status
        self._app = app

    def started(self, value: list[str] | None = None) -> None:
        # After a startup failure serve() is about to raise it, so never report "listening".
        if self._app.failure is None:
            assert value, "hypercorn reports at least one bind"
            self._task_status.started(value[0])


async def _wait_for_stop_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def _build_config(host: str, port: int, options: dict[str, Any]) -> Config:
    unknown = sorted(name for name in options if name not in _CONFIG_OPTIONS)
    if unknown:
        raise TypeError(_unknown_options_message(unknown))
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.errorlog = logging.getLogger("hypercorn.error")
    for name, value in options.items():
        setattr(config, name, value)
    return config


def _settable_config_names() -> frozenset[str]:
    names = set()
    for name in dir(Config):
        attribute = inspect.getattr_static(Config, name)
        if name.startswith("_") or inspect.isfunction(attribute):
            continue
        if isinstance(attribute, classmethod | staticmethod):
            continue
        if isinstance(attribute, property) and attribute.fset is None:
            continue
        names.add(name)
    # host and port are serve()'s own way to say where to listen.
    names.discard("bind")
    return frozenset(names)


_CONFIG_OPTIONS = _settable_config_names()


def _unknown_options_message(unknown: list[str]) -> str:
    parts = []
    for name in unknown:
        if name == "bind":
            parts.append("'bind' (use host= and port=)")
            continue
        close = difflib.get_close_matches(name, _CONFIG_OPTIONS, n=1)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return "serve() got unknown hypercorn option(s): " + ", ".join(parts)
