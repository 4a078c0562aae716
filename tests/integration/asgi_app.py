"""A bare ASGI app that records what the server made it do, for the serving tests.

``app`` prints its events, so a test running it under ``python -m toolkit serve`` in a
subprocess can read them from the child's output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

Record = Callable[[str], None]


class RecordingApp:
    """Answers "hello"; ``/slow`` first sleeps ``slow_seconds``; ``/hang`` never answers;
    ``/error`` raises RuntimeError.

    Records "startup", "shutdown", "request PATH", "response PATH" and "cancelled PATH".
    ``startup_failure`` makes lifespan startup fail with that message.
    """

    def __init__(
        self, record: Record, *, slow_seconds: float = 0.2, startup_failure: str | None = None
    ) -> None:
        self.record = record
        self.slow_seconds = slow_seconds
        self.startup_failure = startup_failure

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            await self.http(scope, receive, send)

    async def lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.startup_failure is not None:
                    await send({"type": "lifespan.startup.failed", "message": self.startup_failure})
                    return
                self.record("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.record("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        self.record(f"request {path}")
        try:
            if path == "/slow":
                await trio.sleep(self.slow_seconds)
            elif path == "/hang":
                await trio.sleep_forever()
            elif path == "/error":
                raise RuntimeError("handler broke")
        except trio.Cancelled:
            self.record(f"cancelled {path}")
            raise
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})
        self.record(f"response {path}")


app = RecordingApp(lambda event: print(event, flush=True))
