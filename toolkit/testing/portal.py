"""A trio run in a background thread that synchronous code calls into (the sync TestClient's)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, suppress
from typing import Any, Generic, TypeVar, TypeVarTuple

import trio

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Portal:
    """Calls async functions in a trio run living in another thread, blocking until they return."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token

    def call(self, afn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
        """Run ``afn(*args)`` as a task in the portal's run; return or raise what it does."""
        return trio.from_thread.run(afn, *args, trio_token=self._token)


class _Host(Generic[T]):
    """The portal thread's side: one trio run holding ``resource`` entered until told to stop."""

    def __init__(
        self, resource: Callable[[], AbstractAsyncContextManager[T]], run_options: dict[str, Any]
    ) -> None:
        self._resource = resource
        self._run_options = run_options
        self.ready = threading.Event()
        self.portal: Portal | None = None
        self.value: T
        self.error: BaseException | None = None
        self._stop = trio.Event()

    def run(self) -> None:
        try:
            trio.run(self._main, **self._run_options)
        except BaseException as error:
            self.error = error
        finally:
            self.ready.set()

    async def _main(self) -> None:
        async with self._resource() as value:
            self.value = value
            self.portal = Portal(trio.lowlevel.current_trio_token())
            self.ready.set()
            await self._stop.wait()

    def stop(self) -> None:
        assert self.portal is not None
        # If the run already ended, its error, if any, is in self.error.
        with suppress(trio.RunFinishedError):
            self.portal.call(self._set_stop)

    async def _set_stop(self) -> None:
        self._stop.set()


@contextmanager
def start_portal(
    resource: Callable[[], AbstractAsyncContextManager[T]], **run_options: Any
) -> Iterator[tuple[Portal, T]]:
    """Start a trio run in a thread, enter ``resource()`` in it, and yield a portal and its value.

    Leaving exits the resource in its run and joins the thread; an error from entering or exiting
    the resource is raised here. ``run_options`` go to ``trio.run``.
    """
    host = _Host(resource, run_options)
    thread = threading.Thread(target=host.run, name="toolkit-portal", daemon=True)
    thread.start()
    host.ready.wait()
    if host.portal is None:
        thread.join()
        assert host.error is not None
        raise host.error
    try:
        yield host.portal, host.value
    finally:
        host.stop()
        thread.join()
    if host.error is not None:
        raise host.error
