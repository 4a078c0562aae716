"""Finding reference cycles: what toolkit leaves to the garbage collector."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable


async def toolkit_garbage(run_once: Callable[[], Awaitable[None]], times: int = 10) -> list[object]:
    """The toolkit objects that ``times`` calls of ``run_once`` leave in reference cycles.

    Cycles would leave every request's (or session's) objects to the garbage collector, which
    is slow when served. Call ``run_once`` once before, to build what is built only once.
    """
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(times):
            await run_once()
        gc.collect()
        return [obj for obj in gc.garbage if type(obj).__module__.startswith("toolkit")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
