"""A real hypercorn server on 127.0.0.1 and a free port, for tests that need real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import trio

from toolkit.serving import _sole_exception, serve
from toolkit.types import ASGIApp

__all__ = ["LiveServer", "live_server"]


@dataclass(frozen=True)
class LiveServer:
    """Where a running live server listens: ``url`` is the base URL, e.g. ``http://127.0.0.1:PORT``."""

    url: str
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> LiveServer:
        """Describe the server bound at ``url`` (as reported by :func:`toolkit.serve`)."""
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None, url
        return cls(url=url, host=parts.hostname, port=parts.port)


@asynccontextmanager
async def live_server(app: ASGIApp, **hypercorn_options: Any) -> AsyncIterator[LiveServer]:
    """Serve ``app`` on 127.0.0.1 and a free port for the duration of the ``async with`` block.

    On a normal exit the server shuts down gracefully and the block's exit waits for it, so
    in-flight requests finish and lifespan shutdown runs before the next line. If the block
    raises, the server is stopped at once. A failure of the server itself propagates.
    """
    stop = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve, app, port=0, shutdown_trigger=stop.wait, **hypercorn_options)
            )
            yield LiveServer.from_url(url)
            stop.set()
    except BaseExceptionGroup as group:
        sole = _sole_exception(group)
        if sole is None:
            raise
    else:
        return
    # Raised outside the handler so the real error keeps its own context and traceback.
    raise sole
