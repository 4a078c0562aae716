"""Find tasks that outlive what should own them: a trio instrument for tests.

Structured concurrency promises that when a server (or a test client) has shut
down, nothing it started is still running. ``TaskLeakChecker`` records every
task spawned while it is active and, on the way out, fails if a task that
belongs to toolkit (or to modules you name, e.g. your test app) is still alive::

    async with TaskLeakChecker(modules=[__name__]):
        async with live_server(app) as server:
            ...
    # raises TaskLeakError here if a toolkit task survived the server

Also a pytest fixture: ``from toolkit.testing.leaks import no_task_leaks`` in a
conftest or test module, then request it from your ``app`` fixture (see there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Self

import pytest
import trio

__all__ = ["TaskLeakChecker", "TaskLeakError", "no_task_leaks"]


class TaskLeakError(AssertionError):
    """Tasks that should have ended with their owner are still alive."""


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(
        name == prefix or name.startswith((prefix + ".", prefix + " ")) for prefix in prefixes
    )


def _modules_running(task: trio.lowlevel.Task) -> Iterator[str]:
    """The modules of the functions the task is inside, outermost first."""
    for frame, _ in task.iter_await_frames():
        module = frame.f_globals.get("__name__")
        if isinstance(module, str):
            yield module


class TaskLeakChecker(trio.abc.Instrument):
    """Records task spawns and exits; ``check()`` fails on a watched task still alive.

    A task is watched if its name, or the module of any function it is inside,
    is within one of ``modules`` (``"toolkit"`` always, plus any given: a dotted
    name covers its submodules). So a server's request task that is still
    running toolkit code counts, as does a toolkit system task. Only tasks
    spawned while the checker is installed are considered: the test harness's
    own tasks, already running, are ignored.
    """

    def __init__(self, modules: Iterable[str] = ()) -> None:
        self.modules = ("toolkit", *modules)
        self._alive: dict[trio.lowlevel.Task, None] = {}
        self.spawned = 0

    # -- trio.abc.Instrument

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += 1
        self._alive[task] = None

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self._alive.pop(task, None)

    # -- use

    def watched(self, task: trio.lowlevel.Task) -> bool:
        """Whether ``task`` belongs to toolkit or to one of the given modules."""
        return _within(task.name, self.modules) or any(
            _within(module, self.modules) for module in _modules_running(task)
        )

    def leaked(self) -> list[str]:
        """Names of the watched tasks spawned since install and still alive, sorted."""
        return sorted(task.name for task in self._alive if self.watched(task))

    def check(self) -> None:
        """Raise ``TaskLeakError`` naming every watched task still alive."""
        leaked = self.leaked()
        if leaked:
            raise TaskLeakError(f"{len(leaked)} task(s) still alive: {', '.join(leaked)}")

    async def __aenter__(self) -> Self:
        trio.lowlevel.add_instrument(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        trio.lowlevel.remove_instrument(self)
        if exc_value is None:
            self.check()


@pytest.fixture
async def no_task_leaks() -> AsyncIterator[TaskLeakChecker]:
    """Fail the test if a toolkit task spawned during it is still alive at its end.

    pytest-trio tears a fixture down only after the fixtures that requested it,
    so request it from the fixture that the server or client depends on (your
    ``app`` fixture, say): then the check runs once they have shut down.
    """
    checker = TaskLeakChecker()
    trio.lowlevel.add_instrument(checker)
    try:
        yield checker
    finally:
        trio.lowlevel.remove_instrument(checker)
    checker.check()
