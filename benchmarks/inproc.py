#!/usr/bin/env python3
"""In-process benchmark: each app called directly under trio.run, with no sockets and no server.

This isolates a framework's own cost per request. Every app first answers one checked request
per scenario (status, body, header); then each round times one batch per framework per scenario,
the framework order rotating from round to round. Ratios are taken within a round and their
median across rounds is reported, so slow drift on a busy machine cancels out.

    python benchmarks/inproc.py -r 7
    python benchmarks/inproc.py -f bare,starlette -s plaintext,users --json /tmp/inproc.json

Starlette runs on anyio's trio backend: inside trio.run, anyio asks sniffio, which says "trio".
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

import sniffio
import trio

from benchmarks.apps import FRAMEWORKS, load_apps
from benchmarks.reporting import describe_environment, format_table
from benchmarks.scenarios import SCENARIOS_BY_NAME, Scenario

Message = dict[str, Any]
Batch = Callable[[int], Awaitable[None]]

# (numerator, denominator) pairs reported when both frameworks ran; the last three show what
# cancel-on-disconnect and the body timer cost.
RATIOS = [
    ("toolkit", "starlette"),
    ("toolkit", "bare"),
    ("starlette", "bare"),
    ("toolkit_nocancel", "starlette"),
    ("toolkit", "toolkit_nocancel"),
    ("toolkit_unwatched", "starlette"),
]


class HTTPExchange:
    """receive() and send() for one HTTP request, behaving as hypercorn's do.

    The first receive() returns the whole request body; a later one waits until the response is
    complete and then returns http.disconnect, which is what hypercorn does. Like hypercorn's
    HTTPStream, it holds the request's scope, so that an app which stores its server's receive or
    send in the scope makes the same reference cycle, and pays the garbage collector, as served.
    """

    __slots__ = ("chunks", "complete", "headers", "request", "response_done", "scope", "status")

    def __init__(self, scope: Message, body: bytes) -> None:
        self.scope = scope
        self.request: Message | None = {"type": "http.request", "body": body, "more_body": False}
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.complete = False
        self.response_done: trio.Event | None = None

    async def receive(self) -> Message:
        """The request body first; then http.disconnect, once the response is complete."""
        request = self.request
        if request is not None:
            self.request = None
            return request
        if not self.complete:
            if self.response_done is None:
                self.response_done = trio.Event()
            await self.response_done.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        """Record the response's status, headers and body."""
        kind = message["type"]
        if kind == "http.response.body":
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                self.complete = True
                if self.response_done is not None:
                    self.response_done.set()
        elif kind == "http.response.start":
            self.status = message["status"]
            self.headers = message.get("headers", [])
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")


class YieldingHTTPExchange(HTTPExchange):
    """An HTTPExchange whose send() yields to trio's scheduler, as a real server's socket write
    does, so that code which runs only once the app blocks (such as a disconnect watcher) runs."""

    __slots__ = ()

    async def send(self, message: Message) -> None:
        """Yield to the scheduler, then record the message."""
        await trio.lowlevel.checkpoint()
        await super().send(message)


def http_scope(scenario: Scenario) -> Message:
    """The scope hypercorn would build for the scenario's request over HTTP/1.1."""
    headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"), (b"accept", b"*/*")]
    if scenario.body:
        headers.append((b"content-length", b"%d" % len(scenario.body)))
    if scenario.content_type:
        headers.append((b"content-type", scenario.content_type.encode()))
    headers += [(name.encode(), value.encode()) for name, value in scenario.headers]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "http_version": "1.1",
        "method": scenario.method,
        "scheme": "http",
        "path": scenario.path,
        "raw_path": scenario.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
    }


def make_batch(
    app: Any, scenario: Scenario, state: dict[str, Any], exchange_class: type[HTTPExchange]
) -> Batch:
    """Return ``batch(n)``, which makes n requests in a row and fails on any non-200 answer."""
    base = http_scope(scenario)
    body = scenario.body

    async def batch(n: int) -> None:
        for _ in range(n):
            scope = base.copy()
            scope["state"] = state.copy()
            scope["extensions"] = {}
            exchange = exchange_class(scope, body)
            await app(scope, exchange.receive, exchange.send)
            if exchange.status != 200 or not exchange.complete:
                raise RuntimeError(f"{scenario.name}: status {exchange.status}")

    return batch


async def check(
    app: Any, scenario: Scenario, state: dict[str, Any], exchange_class: type[HTTPExchange]
) -> str | None:
    """Make one request and say what is wrong with the response, or None if it is right."""
    scope = http_scope(scenario)
    scope["state"] = state.copy()
    exchange = exchange_class(scope, scenario.body)
    try:
        with trio.move_on_after(5):
            await app(scope, exchange.receive, exchange.send)
    except Exception as exc:
        return f"the app raised {exc!r}"
    if not exchange.complete:
        return f"response not complete after 5 s (status {exchange.status})"
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in exchange.headers
    }
    return scenario.problem(exchange.status, headers, b"".join(exchange.chunks))


class LifespanRunner:
    """Runs an app's lifespan protocol in a nursery, as a server does, and keeps its state."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.supported = True
        self.to_app, self.app_inbox = trio.open_memory_channel[Message](1)
        self.app_outbox, self.from_app = trio.open_memory_channel[Message](1)

    async def startup(self, nursery: trio.Nursery) -> None:
        """Start the app's lifespan task and wait for startup to complete."""
        nursery.start_soon(self._run)
        await self.to_app.send({"type": "lifespan.startup"})
        with trio.fail_after(5):
            reply = await self.from_app.receive()
        if reply["type"] == "lifespan.unsupported":
            self.supported = False  # the app raised: carry on without lifespan, as hypercorn does
        elif reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {reply!r}")

    async def shutdown(self) -> None:
        """Ask the app to shut down and wait for it to say it has."""
        if not self.supported:
            return
        await self.to_app.send({"type": "lifespan.shutdown"})
        with trio.fail_after(5):
            reply = await self.from_app.receive()
        if reply["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"lifespan shutdown failed: {reply!r}")

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        try:
            await self.app(scope, self.app_inbox.receive, self.app_outbox.send)
        except Exception as exc:
            await self.app_outbox.send({"type": "lifespan.unsupported", "error": repr(exc)})


async def batch_size(batch: Batch, warmup_seconds: float, batch_seconds: float) -> int:
    """Warm up for about ``warmup_seconds``; return how many requests fill ``batch_seconds``."""
    done = 0
    start = time.perf_counter()
    while done < 100 or time.perf_counter() - start < warmup_seconds:
        await batch(20)
        done += 20
    per_request = (time.perf_counter() - start) / done
    return max(50, round(batch_seconds / per_request))


async def garbage_per_request(batch: Batch, n: int = 200) -> float:
    """How many objects each of ``n`` requests leaves to the cyclic garbage collector.

    Anything above zero is a reference cycle per request: freed only when the collector runs,
    which costs a server far more than the same code costs here (see docs/benchmarks.md).
    """
    gc.collect()
    gc.disable()
    try:
        await batch(n)
        return gc.collect() / n
    finally:
        gc.enable()


async def measure(
    apps: dict[str, Any], scenarios: list[Scenario], args: argparse.Namespace
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, float]], dict[str, str]]:
    """Check every app on every scenario, then time interleaved rounds.

    Returns microseconds per request (one sample per round) by framework and scenario, the
    objects per request left to the garbage collector, and the framework/scenario pairs that were
    skipped, with the reason.
    """
    if sniffio.current_async_library() != "trio":
        raise RuntimeError("not running under trio")
    frameworks = list(apps)
    exchange_class = YieldingHTTPExchange if args.yielding_send else HTTPExchange
    batches: dict[tuple[str, str], tuple[Batch, int]] = {}
    skipped: dict[str, str] = {}
    samples: dict[str, dict[str, list[float]]] = {fw: {} for fw in frameworks}
    async with trio.open_nursery() as nursery:
        lifespans = {fw: LifespanRunner(apps[fw]) for fw in frameworks}
        for fw in list(frameworks):
            try:
                await lifespans[fw].startup(nursery)
            except Exception as exc:
                skipped[fw] = f"lifespan startup failed: {exc!r}"
                frameworks.remove(fw)
        for scenario in scenarios:
            for fw in frameworks:
                problem = await check(apps[fw], scenario, lifespans[fw].state, exchange_class)
                if problem is not None:
                    skipped[f"{fw}/{scenario.name}"] = f"wrong response: {problem}"
                    print(f"!! {fw}/{scenario.name}: {problem}; skipped", file=sys.stderr)
                    continue
                batch = make_batch(apps[fw], scenario, lifespans[fw].state, exchange_class)
                n = await batch_size(batch, args.warmup_seconds, args.batch_seconds)
                batches[fw, scenario.name] = (batch, n)
                samples[fw][scenario.name] = []

        for round_index in range(args.rounds):
            shift = round_index % len(frameworks)
            order = frameworks[shift:] + frameworks[:shift]
            for scenario in scenarios:
                for fw in order:
                    if (fw, scenario.name) not in batches:
                        continue
                    batch, n = batches[fw, scenario.name]
                    gc.collect()
                    start = time.perf_counter_ns()
                    await batch(n)
                    elapsed_ns = time.perf_counter_ns() - start
                    samples[fw][scenario.name].append(elapsed_ns / 1000 / n)
            print(f"   round {round_index + 1}/{args.rounds} done", file=sys.stderr)

        garbage: dict[str, dict[str, float]] = {fw: {} for fw in frameworks}
        for (fw, name), (batch, _) in batches.items():
            garbage[fw][name] = await garbage_per_request(batch)

        for fw in frameworks:
            await lifespans[fw].shutdown()
        nursery.cancel_scope.cancel()  # a lifespan task that never started must not hang the run
    return samples, garbage, skipped


def paired_ratio(mine: list[float], theirs: list[float]) -> float:
    """Median over rounds of the per-round ratio mine/theirs."""
    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True))


def summarise(
    samples: dict[str, dict[str, list[float]]], scenarios: list[Scenario]
) -> dict[str, Any]:
    """Median microseconds per framework and scenario, and the paired ratios."""
    medians = {
        fw: {name: statistics.median(values) for name, values in by_scenario.items()}
        for fw, by_scenario in samples.items()
    }
    ratios: dict[str, dict[str, float]] = {}
    for mine, theirs in RATIOS:
        row = {
            scenario.name: paired_ratio(
                samples[mine][scenario.name], samples[theirs][scenario.name]
            )
            for scenario in scenarios
            if scenario.name in samples.get(mine, {}) and scenario.name in samples.get(theirs, {})
        }
        if row:
            ratios[f"{mine}/{theirs}"] = row
    return {"median_us": medians, "ratios": ratios}


def render(summary: dict[str, Any], frameworks: list[str], scenarios: list[Scenario]) -> str:
    """The results as a Markdown table: median µs per request, then the ratios and targets."""
    medians, ratios = summary["median_us"], summary["ratios"]
    header = ["scenario", *(f"{fw} µs" for fw in frameworks), *ratios]
    if "toolkit/starlette" in ratios:
        header.append("target (toolkit/starlette)")
    rows = []
    for scenario in scenarios:
        row = [scenario.name]
        row += [_number(medians[fw].get(scenario.name)) for fw in frameworks]
        row += [_number(ratio.get(scenario.name)) for ratio in ratios.values()]
        if "toolkit/starlette" in ratios:
            row.append(_verdict(ratios["toolkit/starlette"].get(scenario.name), scenario.target))
        rows.append(row)
    return format_table(header, rows)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _verdict(ratio: float | None, target: float | None) -> str:
    if ratio is None or target is None:
        return "-"
    return f"≤ {target:.1f}: {'met' if ratio <= target else 'MISSED'}"


def main() -> int:
    """Parse the command line, run the benchmark, print the table and optionally write JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-r", "--rounds", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument(
        "-s", "--scenarios", default="all", help=f"comma-separated: {', '.join(SCENARIOS_BY_NAME)}"
    )
    parser.add_argument(
        "-f", "--frameworks", default=",".join(FRAMEWORKS), help="comma-separated subset"
    )
    parser.add_argument("--batch-seconds", type=float, default=0.2, help="length of one batch")
    parser.add_argument("--warmup-seconds", type=float, default=0.2, help="warm-up per batch kind")
    parser.add_argument(
        "--yielding-send",
        action="store_true",
        help="send() yields to trio's scheduler, as a server's socket write does",
    )
    parser.add_argument("--json", metavar="PATH", help="also write samples and summary here")
    args = parser.parse_args()

    names = list(SCENARIOS_BY_NAME) if args.scenarios == "all" else args.scenarios.split(",")
    unknown = [name for name in names if name not in SCENARIOS_BY_NAME]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    scenarios = []
    for name in names:
        scenario = SCENARIOS_BY_NAME[name]
        if scenario.kind == "http":
            scenarios.append(scenario)
        else:
            print(f"-- {name}: no in-process driver for {scenario.kind!r} yet; skipped")
    frameworks = args.frameworks.split(",")
    if not set(frameworks) <= set(FRAMEWORKS):
        parser.error(f"frameworks are among: {', '.join(FRAMEWORKS)}")
    apps, unavailable = load_apps(frameworks)
    for name, reason in unavailable.items():
        print(f"-- {name}: {reason}; skipped", file=sys.stderr)

    environment = describe_environment()
    samples, garbage, skipped = trio.run(measure, apps, scenarios, args)
    environment["loadavg_end"] = describe_environment()["loadavg"]
    summary = summarise(samples, scenarios)
    frameworks = [fw for fw in apps if samples[fw]]
    mode = "send() yields" if args.yielding_send else "send() returns at once"
    print(
        f"\nIn process under trio.run, {mode}; median µs per request over {args.rounds} interleaved"
        f" rounds; ratios paired per round (< 1: faster). {environment['date']}, "
        f"{environment['cpus']} CPUs, load {environment['loadavg']} -> {environment['loadavg_end']}"
    )
    print(render(summary, frameworks, scenarios))
    print("\nObjects per request left to the garbage collector (reference cycles; 0 is right):")
    print(
        format_table(
            ["scenario", *frameworks],
            [
                [s.name, *(f"{garbage[fw].get(s.name, 0):.1f}" for fw in frameworks)]
                for s in scenarios
            ],
        )
    )
    for name, reason in {**unavailable, **skipped}.items():
        print(f"skipped {name}: {reason}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "environment": environment,
                    "arguments": vars(args),
                    "scenarios": {scenario.name: scenario.doc for scenario in scenarios},
                    "samples_us": samples,
                    "garbage_per_request": garbage,
                    "skipped": {**unavailable, **skipped},
                    **summary,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
