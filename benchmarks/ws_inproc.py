#!/usr/bin/env python3
"""In-process WebSocket benchmark: each app called directly under trio.run, no sockets.

Two scenarios, the same echo handler in every framework (accept, then echo each text message):

- ``ws_session``: one session: connect, accept, one echoed message, client disconnect (µs per
  session: the set-up and tear-down cost);
- ``ws_msg``: one echoed message, amortised over 100-message sessions (µs per message).

Frameworks: a bare ASGI callable, Starlette (on anyio's trio backend) and toolkit; and, to split
the cost by layer, ``starlette_route`` and ``toolkit_route``: each app and its routing down to the
bare echo as a raw ASGI endpoint (no WebSocket object, no session). Each round
times one batch per framework per scenario, the order rotating; ratios are taken within a round
and their median across rounds is reported.

    python benchmarks/ws_inproc.py -r 7
    python benchmarks/ws_inproc.py --json /tmp/ws_inproc.json
"""

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from benchmarks.reporting import describe_environment, format_table

Message = dict[str, Any]
ASGIApp = Callable[[Message, Any, Any], Awaitable[None]]

TEXT = "x" * 64
SCENARIOS = {"ws_session": 1, "ws_msg": 100}  # name -> echoed messages per session
UNITS = {"ws_session": "µs/session", "ws_msg": "µs/message"}


def bare_app() -> ASGIApp:
    async def app(scope: Message, receive: Any, send: Any) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"]})

    return app


def starlette_app() -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    return Starlette(routes=[WebSocketRoute("/ws", echo)])


def toolkit_app() -> ASGIApp:
    from toolkit.applications import App
    from toolkit.routing import WebSocketRoute
    from toolkit.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    return App(routes=[WebSocketRoute("/ws", echo)])


class RawEcho:
    """The bare echo as a class instance: both routers hand it the connection as an ASGI app."""

    def __init__(self) -> None:
        self.app = bare_app()

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def starlette_route_app() -> ASGIApp:
    """Starlette's app and routing down to the bare echo: its cost without the WebSocket API."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    return Starlette(routes=[WebSocketRoute("/ws", RawEcho())])


def toolkit_route_app() -> ASGIApp:
    """toolkit's app and routing down to the bare echo: its cost without the session."""
    from toolkit.applications import App
    from toolkit.routing import WebSocketRoute

    return App(routes=[WebSocketRoute("/ws", RawEcho())])


FRAMEWORKS: dict[str, Callable[[], ASGIApp]] = {
    "bare": bare_app,
    "starlette": starlette_app,
    "toolkit": toolkit_app,
    "starlette_route": starlette_route_app,
    "toolkit_route": toolkit_route_app,
}
RATIOS = [
    ("toolkit", "starlette"),
    ("toolkit", "bare"),
    ("starlette", "bare"),
    ("toolkit_route", "starlette_route"),
]


class EchoClient:
    """receive()/send() for one session, driven as an echo client over hypercorn would:
    connect, then one message at a time (the next only once the echo is back), then disconnect.
    """

    __slots__ = ("connected", "echoed", "outstanding", "remaining", "waiter")

    def __init__(self, messages: int) -> None:
        self.remaining = messages
        self.echoed = 0
        self.connected = False
        self.outstanding = False
        self.waiter: trio.Event | None = None

    async def receive(self) -> Message:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        while self.outstanding:
            self.waiter = trio.Event()
            await self.waiter.wait()
        if self.remaining:
            self.remaining -= 1
            self.outstanding = True
            return {"type": "websocket.receive", "bytes": None, "text": TEXT}
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.send":
            if message.get("text") != TEXT:
                raise RuntimeError(f"wrong echo {message!r}")
            self.echoed += 1
            self.outstanding = False
            waiter, self.waiter = self.waiter, None
            if waiter is not None:
                waiter.set()


def scope() -> Message:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"upgrade", b"websocket")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        "state": {},
    }


def make_batch(app: ASGIApp, messages: int) -> Callable[[int], Awaitable[None]]:
    async def batch(sessions: int) -> None:
        for _ in range(sessions):
            client = EchoClient(messages)
            await app(scope(), client.receive, client.send)
            if client.echoed != messages:
                raise RuntimeError(f"{client.echoed}/{messages} echoed")

    return batch


async def measure(frameworks: list[str], rounds: int, seconds: float) -> dict[str, Any]:
    apps = {name: FRAMEWORKS[name]() for name in frameworks}
    batches = {}
    for name in SCENARIOS:
        for fw in frameworks:
            batch = make_batch(apps[fw], SCENARIOS[name])
            start = time.perf_counter()
            done = 0
            while done < 50 or time.perf_counter() - start < 0.3:  # warm up, then size a batch
                await batch(10)
                done += 10
            per_session = (time.perf_counter() - start) / done
            batches[fw, name] = (batch, max(20, round(seconds / per_session)))
    samples: dict[str, dict[str, list[float]]] = {fw: {n: [] for n in SCENARIOS} for fw in apps}
    for round_index in range(rounds):
        order = (
            frameworks[round_index % len(frameworks) :]
            + frameworks[: round_index % len(frameworks)]
        )
        for name, messages in SCENARIOS.items():
            per = 1 if name == "ws_session" else messages
            for fw in order:
                batch, n = batches[fw, name]
                gc.collect()
                start = time.perf_counter_ns()
                await batch(n)
                samples[fw][name].append((time.perf_counter_ns() - start) / 1000 / n / per)
        print(f"   round {round_index + 1}/{rounds} done", file=sys.stderr)
    medians = {fw: {n: statistics.median(v) for n, v in by.items()} for fw, by in samples.items()}
    ratios = {
        f"{a}/{b}": {
            n: statistics.median(x / y for x, y in zip(samples[a][n], samples[b][n], strict=True))
            for n in SCENARIOS
        }
        for a, b in RATIOS
        if a in samples and b in samples
    }
    return {"median_us": medians, "ratios": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-f", "--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("-r", "--rounds", type=int, default=5)
    parser.add_argument("--batch-seconds", type=float, default=0.5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    frameworks = args.frameworks.split(",")
    result = trio.run(measure, frameworks, args.rounds, args.batch_seconds)
    header = ["framework", *(f"{n} ({UNITS[n]})" for n in SCENARIOS)]
    rows = [[fw, *(f"{result['median_us'][fw][n]:.2f}" for n in SCENARIOS)] for fw in frameworks]
    rows += [[pair, *(f"{by[n]:.2f}x" for n in SCENARIOS)] for pair, by in result["ratios"].items()]
    print(format_table(header, rows))
    if args.json:
        result["environment"] = describe_environment()
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
