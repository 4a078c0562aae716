#!/usr/bin/env python3
"""Served WebSocket benchmark: the same echo app behind hypercorn's trio worker, per framework.

Each framework's server runs in its own process (hypercorn, trio worker, 127.0.0.1, no logs);
one client process drives it with trio-websocket:

- ``echo``: ``--connections`` sessions (default 64) each send a 64-byte text message and wait
  for its echo, over and over, for ``--duration`` seconds: echoed messages per second, and the
  server process's CPU time per message (user + system, from /proc: steadier than throughput
  on a shared machine);
- ``idle``: ``--idle`` sessions (default 1000) opened and left idle: the server's resident
  memory before and after, per session (KiB).

Frameworks are interleaved round by round, the order rotating; the echo ratio is the median of
the per-round ratios. The client shares the machine with the server, so compare ratios taken in
one run, not absolute figures across machines.

    python benchmarks/ws_served.py -r 3 -d 5
    python benchmarks/ws_served.py --json /tmp/ws_served.json
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio

from benchmarks.reporting import describe_environment, format_table

FRAMEWORKS = ["starlette", "toolkit"]
TEXT = "x" * 64


def build_app(framework: str) -> Any:
    """The echo app: accept, then send back every text message."""
    if framework == "starlette":
        from starlette.applications import Starlette as App
        from starlette.routing import WebSocketRoute
        from starlette.websockets import WebSocket
    else:
        from toolkit.applications import App  # type: ignore[assignment]
        from toolkit.routing import WebSocketRoute  # type: ignore[assignment]
        from toolkit.websockets import WebSocket  # type: ignore[assignment]

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    return App(routes=[WebSocketRoute("/ws", echo)])


def serve(framework: str, port: int) -> None:
    """The server process: hypercorn's trio worker until SIGTERM."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.backlog = 2048
    trio.run(hypercorn_serve, build_app(framework), config)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(framework: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", framework, "--port", str(port)],
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{framework} server did not start")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def echo_load(pid: int, port: int, connections: int, duration: float) -> tuple[int, float]:
    """Echoed messages per second over ``connections`` ping-pong sessions, and the server's
    CPU µs per message."""
    from trio_websocket import open_websocket_url

    counts = [0] * connections
    opened = 0
    all_open = trio.Event()
    go = trio.Event()

    async def client(index: int) -> None:
        nonlocal opened
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws") as ws:
            opened += 1
            if opened == connections:
                all_open.set()
            await go.wait()
            while not stop:
                await ws.send_message(TEXT)
                await ws.get_message()
                counts[index] += 1

    stop = False
    async with trio.open_nursery() as nursery:
        for index in range(connections):
            nursery.start_soon(client, index)
        await all_open.wait()
        await trio.sleep(0.5)  # warm-up: connections settle
        go.set()
        await trio.sleep(0.5)
        before, cpu_before = sum(counts), cpu_seconds(pid)
        await trio.sleep(duration)
        done, cpu = sum(counts) - before, cpu_seconds(pid) - cpu_before
        stop = True
    return round(done / duration), cpu / done * 1e6


async def idle_memory(pid: int, port: int, sessions: int) -> float:
    """Server RSS growth per idle session, in KiB."""
    from trio_websocket import open_websocket_url

    opened = 0
    all_open = trio.Event()
    release = trio.Event()

    async def client() -> None:
        nonlocal opened
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws", connect_timeout=30) as ws:
            await ws.send_message(TEXT)  # one round trip: the session is fully set up
            await ws.get_message()
            opened += 1
            if opened == sessions:
                all_open.set()
            await release.wait()

    await trio.sleep(0.5)
    before = rss_kib(pid)
    async with trio.open_nursery() as nursery:
        for _ in range(sessions):
            nursery.start_soon(client)
        await all_open.wait()
        await trio.sleep(1.0)
        after = rss_kib(pid)
        release.set()
    return (after - before) / sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("-f", "--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("-r", "--rounds", type=int, default=3)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-c", "--connections", type=int, default=64)
    parser.add_argument("--idle", type=int, default=1000, help="idle sessions (0: skip)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    frameworks = args.frameworks.split(",")
    rates: dict[str, list[int]] = {fw: [] for fw in frameworks}
    cpu: dict[str, list[float]] = {fw: [] for fw in frameworks}
    memory: dict[str, float] = {}
    for round_index in range(args.rounds):
        shift = round_index % len(frameworks)
        for fw in frameworks[shift:] + frameworks[:shift]:
            process, port = start_server(fw)
            try:
                rate, cpu_us = trio.run(
                    echo_load, process.pid, port, args.connections, args.duration
                )
                rates[fw].append(rate)
                cpu[fw].append(cpu_us)
                if args.idle and round_index == 0:
                    memory[fw] = trio.run(idle_memory, process.pid, port, args.idle)
            finally:
                stop_server(process)
        print(f"   round {round_index + 1}/{args.rounds} done", file=sys.stderr)

    header = [
        "framework",
        f"echo messages/s ({args.connections} connections)",
        "server CPU µs/message",
    ]
    if memory:
        header.append(f"server KiB per idle session ({args.idle})")
    rows = []
    for fw in frameworks:
        row = [fw, f"{statistics.median(rates[fw]):,.0f}", f"{statistics.median(cpu[fw]):.1f}"]
        if memory:
            row.append(f"{memory[fw]:.1f}")
        rows.append(row)
    ratio = cpu_ratio = None
    if "toolkit" in rates and "starlette" in rates:
        ratio = statistics.median(
            t / s for t, s in zip(rates["toolkit"], rates["starlette"], strict=True)
        )
        cpu_ratio = statistics.median(
            t / s for t, s in zip(cpu["toolkit"], cpu["starlette"], strict=True)
        )
        row = ["toolkit/starlette", f"{ratio:.2f}x", f"{cpu_ratio:.2f}x"]
        if memory:
            row.append(f"{memory['toolkit'] / memory['starlette']:.2f}x")
        rows.append(row)
    print(format_table(header, rows))
    if args.json:
        result = {
            "echo_messages_per_s": rates,
            "server_cpu_us_per_message": cpu,
            "toolkit/starlette cpu": cpu_ratio,
            "idle_kib_per_session": memory,
            "toolkit/starlette": ratio,
            "environment": describe_environment(),
        }
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
