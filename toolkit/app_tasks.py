"""App-scoped tasks: work that outlives a request, owned by the app's lifespan.

While the app runs, its lifespan holds a supervised nursery. ``app.start_soon``
and ``app.start`` put tasks there. A failing task is logged and reported to
``on_task_error``; it never takes the server down. At shutdown the tasks get
``shutdown_timeout`` seconds to finish; those still running are cancelled and
named in the log.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

logger = logging.getLogger("toolkit")

TaskErrorHandler = Callable[[BaseException, str], Any]


async def report_task_error(
    exc: BaseException, description: str, on_task_error: TaskErrorHandler | None
) -> None:
    """Log a task's failure with its traceback and hand it to ``on_task_error``, once."""
    logger.error("%s failed", description, exc_info=exc)
    if on_task_error is None:
        return
    try:
        result = on_task_error(exc, description)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("on_task_error raised while reporting %s", description)


def describe(async_fn: Callable[..., Any], name: object = None) -> str:
    """A task's name for logs: the given name, else the function's qualified name."""
    if name is not None:
        return str(name)
    return getattr(async_fn, "__qualname__", None) or repr(async_fn)


class _StartedStatus:
    """Passes ``started()`` through to trio, remembering that it was called."""

    def __init__(self, task_status: trio.TaskStatus[Any]) -> None:
        self._task_status = task_status
        self.called = False

    def started(self, value: Any = None) -> None:
        self.called = True
        self._task_status.started(value)


class AppTasks:
    """The supervised nursery behind ``app.start_soon`` / ``app.start``."""

    def __init__(self, on_task_error: TaskErrorHandler | None) -> None:
        self.on_task_error = on_task_error
        self._nursery: trio.Nursery | None = None
        self._accepting = False
        self._running: dict[trio.CancelScope, str] = {}
        self._idle: trio.Event | None = None

    @property
    def running(self) -> bool:
        return self._accepting

    def _nursery_or_raise(self) -> trio.Nursery:
        if self._nursery is None or not self._accepting:
            raise RuntimeError(
                "The app is not running, so it cannot start app tasks: serve it "
                "(toolkit.serve, hypercorn) or enter its test client, which run its lifespan."
            )
        return self._nursery

    def start_soon(
        self, async_fn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> None:
        nursery = self._nursery_or_raise()
        description = describe(async_fn, name)
        scope = self._track(description)
        nursery.start_soon(self._supervise, async_fn, args, description, scope, name=description)

    async def start(
        self, async_fn: Callable[..., Awaitable[object]], *args: object, name: object = None
    ) -> Any:
        nursery = self._nursery_or_raise()
        description = describe(async_fn, name)
        scope = self._track(description)
        return await nursery.start(
            self._supervise, async_fn, args, description, scope, name=description
        )

    def _track(self, description: str) -> trio.CancelScope:
        """Count a task as running from the moment it is started: a drain begun before it
        first runs must still wait for it (and cancel it)."""
        scope = trio.CancelScope()
        self._running[scope] = description
        return scope

    async def _supervise(
        self,
        async_fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        description: str,
        scope: trio.CancelScope,
        task_status: trio.TaskStatus[Any] | None = None,
    ) -> None:
        status = None if task_status is None else _StartedStatus(task_status)
        try:
            with scope:
                if status is None:
                    await async_fn(*args)
                else:
                    await async_fn(*args, task_status=status)
        except Exception as exc:
            if status is not None and not status.called:
                raise  # app.start() raises it to its caller instead
            await report_task_error(exc, f"App task {description!r}", self.on_task_error)
        finally:
            del self._running[scope]
            if not self._running and self._idle is not None:
                self._idle.set()

    @asynccontextmanager
    async def open(self, shutdown_timeout: float) -> AsyncIterator[None]:
        """Hold the nursery open for the ``async with`` body; drain it on the way out."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._accepting = True
            grace = shutdown_timeout
            try:
                yield
            except BaseException:
                grace = 0  # the lifespan failed: no grace, as a failing nursery body gives none
                raise
            finally:
                with trio.CancelScope(shield=True):
                    await self.drain(grace)
        self._nursery = None

    async def drain(self, shutdown_timeout: float) -> None:
        """Give running tasks ``shutdown_timeout`` seconds, then cancel the rest and say which."""
        self._accepting = False
        if self._running:
            self._idle = trio.Event()
            with trio.move_on_after(shutdown_timeout):
                await self._idle.wait()
        if self._running:
            names = ", ".join(sorted(self._running.values()))
            logger.warning(
                "Shutdown: cancelling %d app task(s) still running after %ss: %s",
                len(self._running),
                shutdown_timeout,
                names,
            )
            for scope in list(self._running):
                scope.cancel()
            # Let their clean-up run now, before the lifespan goes on to close what they use.
            assert self._idle is not None
            await self._idle.wait()
