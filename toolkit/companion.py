"""The companion: the helper task that hosts one request's or one WebSocket session's children.

A request or a session only sometimes needs tasks besides its own: children started with
``request.nursery`` / ``websocket.nursery``, the HTTP disconnect watcher, the WebSocket receive
pump. Opening a nursery in the owner's task would cost every request and session about as much
as the rest of a small one, so the nursery lives in a trio system task started on first need,
the *companion*, whose lifetime the owner bounds: it joins (or cancels) the companion before it
ends itself (see docs/concurrency.md and docs/websockets.md).

Two kinds of task run in it:

- **children**: the owner's user tasks; ``join()`` waits for them;
- **services**: toolkit's own helpers (the watcher, the pump); ``join()`` cancels them.

A child that fails cancels the other children and is handed to the owner
(``child_failed``), which answers it as its own failure; a system task never raises.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import trio

AsyncFn = Callable[..., Awaitable[object]]


class CompanionOwner(Protocol):
    """What a companion reports to: the request scope, or the WebSocket session."""

    def child_failed(self, error: BaseException) -> None:
        """A child failed with ``error`` (unwrapped from its exception group)."""


class Companion:
    """A trio system task hosting an owner's children and services; see the module docstring."""

    def __init__(self, owner: CompanionOwner, name: str) -> None:
        # Weakly: the owner holds its companion, and a cycle would leave every owner
        # to the garbage collector.
        self._owner = weakref.ref(owner)
        #: Cancels the children and the services (not the owner).
        self.cancel_scope = trio.CancelScope()
        self.nursery = TaskNursery(self)
        self._nursery: trio.Nursery | None = None
        self._services: trio.Nursery | None = None
        self._pending: list[tuple[bool, AsyncFn, tuple[object, ...], object, Any]] = []
        self._ready = trio.Event()
        self._finish = trio.Event()
        self._finished = trio.Event()
        trio.lowlevel.spawn_system_task(self._run, name=name, context=contextvars.copy_context())

    def start_soon(self, async_fn: AsyncFn, args: tuple[object, ...], name: object) -> None:
        """Start a child: ``join()`` waits for it."""
        if self._nursery is not None:
            # While children run (the owner is joining them), they may start siblings,
            # as in any trio nursery; once it has closed, trio raises RuntimeError.
            self._nursery.start_soon(async_fn, *args, name=name)
        else:
            # Started later from the companion: keep the starter's context variables.
            self._pending.append((False, async_fn, args, name, contextvars.copy_context()))

    def start_service(self, async_fn: AsyncFn, *args: object) -> None:
        """Start a helper that runs until the owner ends (``join()`` cancels it)."""
        if self._finish.is_set():
            return  # the owner is ending: nothing left to help with
        if self._services is not None:
            self._services.start_soon(async_fn, *args)
        else:
            self._pending.append((True, async_fn, args, None, contextvars.copy_context()))

    async def ready(self) -> trio.Nursery:
        """The children's nursery, once the companion runs."""
        await self._ready.wait()
        assert self._nursery is not None
        return self._nursery

    def cancel(self) -> None:
        """Cancel the children and the services."""
        self.cancel_scope.cancel()

    async def _run(self) -> None:
        try:
            with self.cancel_scope:
                # Services inside: closing them first, the children's nursery then joins.
                async with trio.open_nursery() as nursery, trio.open_nursery() as services:
                    self._nursery, self._services = nursery, services
                    for service, async_fn, args, name, context in self._pending:
                        target = services if service else nursery
                        context.run(target.start_soon, async_fn, *args, name=name)
                    self._pending.clear()
                    self._ready.set()
                    await self._finish.wait()
                    services.cancel_scope.cancel()
                    self._services = None
        except trio.Cancelled:
            raise
        except BaseException as exc:  # a system task must not raise: hand it to the owner
            owner = self._owner()
            if owner is not None:
                owner.child_failed(sole_error(exc))
        finally:
            self._ready.set()
            self._finished.set()

    async def join(self) -> None:
        """Stop the services and wait for the children; cancel them if this wait is cancelled."""
        self._finish.set()
        try:
            await self._finished.wait()
        except trio.Cancelled:
            self.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                await self._finished.wait()
            raise


class TaskNursery:
    """``request.nursery`` / ``websocket.nursery``: child tasks that cannot outlive their owner.

    It has the parts of ``trio.Nursery`` a handler uses (``start_soon``, ``start``,
    ``cancel_scope``); the nursery behind it lives in the owner's companion task.
    """

    __slots__ = ("_companion",)

    def __init__(self, companion: Companion) -> None:
        self._companion = companion

    def start_soon(self, async_fn: AsyncFn, *args: object, name: object = None) -> None:
        """Run ``async_fn(*args)`` as a child."""
        self._companion.start_soon(async_fn, args, name)

    async def start(self, async_fn: AsyncFn, *args: object, name: object = None) -> Any:
        """Like ``trio.Nursery.start``: return once the child calls ``task_status.started()``."""
        nursery = await self._companion.ready()
        return await nursery.start(async_fn, *args, name=name)

    @property
    def cancel_scope(self) -> trio.CancelScope:
        """Cancelling it cancels the children (not the handler)."""
        return self._companion.cancel_scope


def sole_error(error: BaseException) -> BaseException:
    """The one exception inside (nested) single-exception groups, else the group itself."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error
