"""Work attached to a response, run after its last byte has been sent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ParamSpec

import trio

from toolkit.app_tasks import TaskErrorHandler, report_task_error
from toolkit.concurrency import current_thread_limiter, is_async_callable, run_in_thread

P = ParamSpec("P")


class BackgroundTask:
    """One call, sync or async, to make once the response is sent.

    Sync callables run in a worker thread, under the app's thread limiter when
    toolkit's router runs the task.
    """

    def __init__(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.is_async = is_async_callable(func)

    @property
    def name(self) -> str:
        """A readable description of the call, for logs and ``on_task_error``."""
        return getattr(self.func, "__qualname__", None) or repr(self.func)

    async def __call__(self) -> None:
        if self.is_async:
            await self.func(*self.args, **self.kwargs)
        else:
            await run_in_thread(partial(self.func, *self.args, **self.kwargs))


class BackgroundTasks(BackgroundTask):
    """Several background tasks, run one after another in the order added.

    Under toolkit's router every task runs even if an earlier one fails (each
    failure is logged and reported); called directly, the first failure stops
    the rest, as in Starlette.
    """

    def __init__(self, tasks: Sequence[BackgroundTask] | None = None) -> None:
        self.tasks = list(tasks) if tasks else []

    def add_task(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> None:
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    @property
    def name(self) -> str:
        return "BackgroundTasks(" + ", ".join(task.name for task in self.tasks) + ")"

    async def __call__(self) -> None:
        for task in self.tasks:
            await task()


async def run_background(
    tasks: Sequence[BackgroundTask],
    limiter: trio.CapacityLimiter | None,
    on_task_error: TaskErrorHandler | None,
) -> None:
    """Run responses' background tasks one by one; a failure is reported and the rest still run.

    Sync tasks share the app's thread ``limiter``.
    """
    token = current_thread_limiter.set(limiter)
    try:
        for task in tasks:
            for single in task.tasks if isinstance(task, BackgroundTasks) else (task,):
                try:
                    await single()
                except Exception as exc:
                    await report_task_error(exc, f"Background task {single.name!r}", on_task_error)
    finally:
        current_thread_limiter.reset(token)
