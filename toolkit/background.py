"""Work attached to a response, run after its last byte has been sent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, ParamSpec

from toolkit.concurrency import is_async_callable, run_in_thread

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
    """Several background tasks, run one after another in the order added."""

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
