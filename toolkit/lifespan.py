"""The lifespan protocol: startup, the app's running life, and shutdown.

Runs the user's lifespan context (Starlette's ``lifespan=``: an async context
manager factory, optionally yielding state for ``request.state``) around the
app's supervised task nursery, and reports every failure through the
protocol's messages, so a server neither carries on after a failed startup
nor silently skips shutdown.

Order at shutdown: app tasks are drained (``shutdown_timeout``), then the
user's lifespan exits, then ``lifespan.shutdown.complete`` is sent.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import trio

from toolkit.app_tasks import AppTasks
from toolkit.types import Receive, Scope, Send

logger = logging.getLogger("toolkit")

LifespanContext = Callable[[Any], AbstractAsyncContextManager[Any]]


async def run_lifespan(
    app: Any,
    lifespan_context: LifespanContext,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    tasks: AppTasks | None = None,
    shutdown_timeout: float = 0.0,
) -> None:
    """Handle one ``lifespan`` scope from ``lifespan.startup`` to ``lifespan.shutdown``."""
    await receive()  # lifespan.startup
    started = False
    app_tasks: AbstractAsyncContextManager[None] = (
        nullcontext() if tasks is None else tasks.open(shutdown_timeout)
    )
    try:
        async with app_tasks, lifespan_context(app) as state:
            if state is not None:
                if "state" not in scope:
                    raise RuntimeError('The server does not support "state" in the lifespan scope.')
                scope["state"].update(state)
            await send({"type": "lifespan.startup.complete"})
            started = True
            await receive()  # lifespan.shutdown
            if tasks is not None:
                await tasks.drain(shutdown_timeout)
    except BaseException as exc:
        if isinstance(exc, trio.Cancelled) or (
            isinstance(exc, BaseExceptionGroup) and exc.split(trio.Cancelled)[1] is None
        ):
            raise  # cancelled (nurseries wrap that in groups): the server stops, nothing failed
        phase = "shutdown" if started else "startup"
        logger.error("Lifespan %s failed", phase, exc_info=exc)
        message = "".join(traceback.format_exception(exc))
        # hypercorn raises from send() here, so the server stops with this error.
        await send({"type": f"lifespan.{phase}.failed", "message": message})
        if isinstance(exc, Exception):
            return
        raise
    await send({"type": "lifespan.shutdown.complete"})
