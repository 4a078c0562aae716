#!/usr/bin/env python3
"""Served benchmark: each app behind hypercorn's trio worker on loopback, under a load generator.

Each round starts one server per framework, each on a free 127.0.0.1 port; then for each
scenario, framework after framework (the order rotating from round to round), it checks the
answer and runs a warm-up and a timed run of ``-d`` seconds with ``-c`` connections. The load
generator is wrk when installed, else a trio + httpx client (which, being Python, is slower than
the server: its figures only say whether anything is badly off). Requests/s ratios are paired
within a round and their median across rounds is reported, then the same runs as server CPU
time per request (steadier on a shared machine). Servers are killed when the run ends, however it
ends.

    python benchmarks/served.py -d 5 -r 3
    python benchmarks/served.py -f bare,starlette -s plaintext -d 2 -r 1 --json /tmp/served.json

On a machine with two CPUs or more the server is pinned to CPU 0 and the load generator to CPU 1.
"""

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.apps import FRAMEWORKS, load_apps
from benchmarks.reporting import PROJECT_ROOT, describe_environment, format_table
from benchmarks.scenarios import SCENARIOS_BY_NAME, Scenario

HOST = "127.0.0.1"  # loopback only, never anything else
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk_report.lua"
RATIOS = [
    ("toolkit", "starlette"),
    ("toolkit", "bare"),
    ("starlette", "bare"),
    ("toolkit_nocancel", "starlette"),
]
DEFAULT_FRAMEWORKS = "bare,starlette,toolkit"


@dataclass
class LoadResult:
    """One timed run against one server: throughput, latency, failures and the server's CPU use."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: int
    server_cpu: float = 0.0
    server_cpu_seconds: float = 0.0

    @property
    def rps(self) -> float:
        """Requests per second over the timed run."""
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """Server CPU time per request, in µs: unlike requests/s, it holds steady when other
        processes take turns on the server's CPU."""
        return self.server_cpu_seconds / max(1, self.requests) * 1e6


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def process_group_cpu_seconds(group: int) -> float:
    """User plus system CPU seconds used so far by the live processes of one process group."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == group:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Server:
    """One app served by ``python -m hypercorn --worker-class trio`` in its own process group.

    ``framework`` names it in messages and its log; ``app`` is hypercorn's ``module:attribute``
    (by default the framework's benchmark app); ``environment`` is added to the server's.
    """

    def __init__(
        self,
        framework: str,
        cpu: str | None,
        log_dir: Path,
        app: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.framework = framework
        self.port = free_port()
        command = [
            sys.executable,
            "-m",
            "hypercorn",
            "--worker-class",
            "trio",
            "--bind",
            f"{HOST}:{self.port}",
            "--log-level",
            "WARNING",
            app or f"{FRAMEWORKS[framework]}:app",
        ]
        if cpu is not None:
            command = ["taskset", "-c", cpu, *command]
        self.log_path = log_dir / f"{framework}-{self.port}.log"
        self.log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(environment or {})},
        )

    def __enter__(self) -> "Server":
        try:
            self.wait_until_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_until_listening(self, timeout: float = 20) -> None:
        """Return once the port accepts connections; raise with the log if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.log.flush()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.framework} server did not start; its log ends:\n{tail}")

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server and its worker process."""
        return process_group_cpu_seconds(self.process.pid)

    def worker_pid(self) -> int:
        """The process hypercorn spawned to run the app (the one that holds requests' memory)."""
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
                command = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[2]) == self.process.pid and b"spawn_main" in command:
                return int(entry.name)
        return self.process.pid  # no worker process: hypercorn serves from its main process

    def stop(self) -> None:
        """Terminate the whole process group, killing it if it is not gone within 10 s."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        self.log.close()


def request_headers(scenario: Scenario) -> dict[str, str]:
    """The headers a load generator adds for the scenario: its own, and its body's type."""
    headers = dict(scenario.headers)
    if scenario.content_type:
        headers["content-type"] = scenario.content_type
    return headers


def check(port: int, scenario: Scenario) -> str | None:
    """Make the scenario's request once; say what is wrong with the answer, or None."""
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    headers = request_headers(scenario)
    try:
        connection.request(scenario.method, scenario.path, scenario.body or None, headers)
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        return f"request failed: {exc!r}"
    finally:
        connection.close()
    received = {name.lower(): value for name, value in response.getheaders()}
    return scenario.problem(response.status, received, body)


def wrk_load(
    port: int, scenario: Scenario, seconds: int, connections: int, body_file: Path
) -> LoadResult:
    """Run wrk (one thread) for ``seconds`` and read the report line of wrk_report.lua."""
    environment = {
        **os.environ,
        "BENCH_METHOD": scenario.method,
        "BENCH_BODY_FILE": str(body_file) if scenario.body else "",
        "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in request_headers(scenario).items()),
    }
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(WRK_SCRIPT), f"http://{HOST}:{port}{scenario.path}"]
    completed = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            report = json.loads(line.removeprefix("BENCH_JSON "))
            return LoadResult(
                requests=report["requests"],
                seconds=report["duration_us"] / 1e6,
                p50_ms=report["p50_us"] / 1000,
                p99_ms=report["p99_us"] / 1000,
                failures=report["errors"] + report["non_2xx"],
            )
    raise RuntimeError(f"wrk gave no report:\n{completed.stdout[-1000:]}{completed.stderr[-1000:]}")


def httpx_load(port: int, scenario: Scenario, seconds: int, connections: int) -> LoadResult:
    """Keep ``connections`` requests in flight for ``seconds`` with httpx under trio."""
    import httpx
    import trio

    latencies: list[float] = []
    failures = 0
    headers = request_headers(scenario)
    url = f"http://{HOST}:{port}{scenario.path}"
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def load() -> float:
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            deadline = time.perf_counter() + seconds

            async def one_connection() -> None:
                nonlocal failures
                while time.perf_counter() < deadline:
                    sent = time.perf_counter()
                    try:
                        response = await client.request(
                            scenario.method, url, content=scenario.body or None, headers=headers
                        )
                    except httpx.HTTPError:
                        failures += 1
                        continue
                    latencies.append(time.perf_counter() - sent)
                    failures += response.status_code != 200

            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(connections):
                    nursery.start_soon(one_connection)
            return time.perf_counter() - started

    elapsed = trio.run(load)
    latencies.sort()
    if not latencies:
        raise RuntimeError("no request succeeded")
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        failures=failures,
    )


def measure(
    frameworks: list[str], scenarios: list[Scenario], args: argparse.Namespace, work_dir: Path
) -> tuple[dict[str, dict[str, list[LoadResult]]], dict[str, str]]:
    """Run every round; return the results by framework and scenario, and what was skipped."""
    body_file = work_dir / "body"
    results: dict[str, dict[str, list[LoadResult]]] = {fw: {} for fw in frameworks}
    skipped: dict[str, str] = {}

    def load(port: int, scenario: Scenario, seconds: int) -> LoadResult:
        connections = min(args.connections, scenario.max_connections or args.connections)
        if args.load_generator == "wrk":
            body_file.write_bytes(scenario.body)
            return wrk_load(port, scenario, seconds, connections, body_file)
        return httpx_load(port, scenario, seconds, connections)

    for round_index in range(args.rounds):
        shift = round_index % len(frameworks)
        order = frameworks[shift:] + frameworks[:shift]
        with contextlib.ExitStack() as stack:
            # All servers of a round stay up (idle ones cost nothing), so the runs compared for a
            # scenario follow each other within seconds.
            servers = {
                fw: stack.enter_context(Server(fw, args.server_cpu, work_dir)) for fw in order
            }
            for scenario in scenarios:
                for fw in order:
                    server = servers[fw]
                    problem = check(server.port, scenario)
                    if problem is not None:
                        skipped[f"{fw}/{scenario.name}"] = f"wrong response: {problem}"
                        print(f"!! {fw}/{scenario.name}: {problem}; skipped", file=sys.stderr)
                        continue
                    if args.warmup:
                        load(server.port, scenario, args.warmup)
                    cpu_before, started = server.cpu_seconds(), time.monotonic()
                    result = load(server.port, scenario, args.duration)
                    result.server_cpu_seconds = server.cpu_seconds() - cpu_before
                    result.server_cpu = result.server_cpu_seconds / (time.monotonic() - started)
                    results[fw].setdefault(scenario.name, []).append(result)
                    print(
                        f"   round {round_index + 1}/{args.rounds} {scenario.name:9} {fw:16} "
                        f"{result.rps:8.0f} req/s  p99 {result.p99_ms:6.1f} ms  "
                        f"server CPU {result.server_cpu:4.0%} ({result.cpu_us:4.0f} µs/request)  "
                        f"failures {result.failures}",
                        file=sys.stderr,
                    )
    return results, skipped


def summarise(
    results: dict[str, dict[str, list[LoadResult]]], scenarios: list[Scenario]
) -> dict[str, Any]:
    """Medians over rounds per framework and scenario, and requests/s ratios paired per round."""
    medians = {
        fw: {
            name: {
                "rps": statistics.median(run.rps for run in runs),
                "p99_ms": statistics.median(run.p99_ms for run in runs),
                "server_cpu": statistics.median(run.server_cpu for run in runs),
                "cpu_us": statistics.median(run.cpu_us for run in runs),
                "failures": sum(run.failures for run in runs),
            }
            for name, runs in by_scenario.items()
        }
        for fw, by_scenario in results.items()
    }
    ratios: dict[str, dict[str, float]] = {}
    capacity: dict[str, dict[str, float]] = {}
    for mine, theirs in RATIOS:
        row, capacity_row = {}, {}
        for scenario in scenarios:
            my_runs = results.get(mine, {}).get(scenario.name)
            their_runs = results.get(theirs, {}).get(scenario.name)
            if my_runs and their_runs and len(my_runs) == len(their_runs):
                pairs = list(zip(my_runs, their_runs, strict=True))
                row[scenario.name] = statistics.median(a.rps / b.rps for a, b in pairs)
                capacity_row[scenario.name] = statistics.median(
                    b.cpu_us / a.cpu_us for a, b in pairs
                )
        if row:
            ratios[f"{mine}/{theirs}"] = row
            capacity[f"{mine}/{theirs}"] = capacity_row
    return {"medians": medians, "rps_ratios": ratios, "cpu_capacity_ratios": capacity}


def _render(
    summary: dict[str, Any],
    frameworks: list[str],
    scenarios: list[Scenario],
    ratio_key: str,
    column: str,
    ratio_label: str,
    cell_text: Any,
) -> str:
    """One results table: a cell per framework, then the paired ratios and the verdict."""
    medians, ratios = summary["medians"], summary[ratio_key]
    header = ["scenario", *(f"{fw} {column}" for fw in frameworks)]
    header += [f"{pair} {ratio_label}" for pair in ratios]
    if "toolkit/starlette" in ratios:
        header.append("target (toolkit/starlette req/s)")
    rows = []
    for scenario in scenarios:
        row = [scenario.name]
        for fw in frameworks:
            cell = medians[fw].get(scenario.name)
            row.append("-" if cell is None else cell_text(cell))
        row += [
            "-" if scenario.name not in ratio else f"{ratio[scenario.name]:.2f}"
            for ratio in ratios.values()
        ]
        if "toolkit/starlette" in ratios:
            row.append(_verdict(ratios["toolkit/starlette"].get(scenario.name), scenario))
        rows.append(row)
    return format_table(header, rows)


def render(summary: dict[str, Any], frameworks: list[str], scenarios: list[Scenario]) -> str:
    """The results as a Markdown table: req/s and p99 per framework, then req/s ratios."""
    return _render(
        summary,
        frameworks,
        scenarios,
        "rps_ratios",
        "req/s (p99 ms)",
        "req/s",
        lambda cell: f"{cell['rps']:,.0f} ({cell['p99_ms']:.1f})",
    )


def render_cpu(summary: dict[str, Any], frameworks: list[str], scenarios: list[Scenario]) -> str:
    """Server CPU µs per request per framework, and the requests per CPU-second ratios."""
    return _render(
        summary,
        frameworks,
        scenarios,
        "cpu_capacity_ratios",
        "CPU µs/request",
        "requests per CPU second",
        lambda cell: f"{cell['cpu_us']:,.0f}",
    )


def _verdict(ratio: float | None, scenario: Scenario) -> str:
    if ratio is None or scenario.served_target is None:
        return "-"
    met = ratio >= scenario.served_target
    return f"≥ {scenario.served_target:.1f}: {'met' if met else 'MISSED'}"


def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit, so the servers are stopped on the way out."""
    raise SystemExit(128 + signum)


def main() -> int:
    """Parse the command line, run the rounds, print the table and optionally write JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-d", "--duration", type=int, default=5, help="seconds per timed run")
    parser.add_argument("-w", "--warmup", type=int, default=1, help="warm-up seconds per run")
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("-c", "--connections", type=int, default=64, help="open connections")
    parser.add_argument(
        "-s", "--scenarios", default="all", help=f"comma-separated: {', '.join(SCENARIOS_BY_NAME)}"
    )
    parser.add_argument(
        "-f",
        "--frameworks",
        default=DEFAULT_FRAMEWORKS,
        help=f"comma-separated, among {', '.join(FRAMEWORKS)} (default {DEFAULT_FRAMEWORKS})",
    )
    parser.add_argument(
        "--load-generator",
        choices=["auto", "wrk", "httpx"],
        default="auto",
        help="auto: wrk if installed, else httpx under trio",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every run and the summary here")
    args = parser.parse_args()
    if not (1 <= args.duration <= 60 and 0 <= args.warmup <= 10 and 1 <= args.connections <= 512):
        parser.error("keep it bounded: 1 <= -d <= 60, 0 <= -w <= 10, 1 <= -c <= 512")
    if args.load_generator == "auto":
        args.load_generator = "wrk" if shutil.which("wrk") else "httpx"
    elif args.load_generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install -y wrk)")

    names = list(SCENARIOS_BY_NAME) if args.scenarios == "all" else args.scenarios.split(",")
    unknown = [name for name in names if name not in SCENARIOS_BY_NAME]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    scenarios = []
    for name in names:
        if SCENARIOS_BY_NAME[name].kind == "http":
            scenarios.append(SCENARIOS_BY_NAME[name])
        else:
            print(f"-- {name}: the load generators only speak HTTP; skipped", file=sys.stderr)
    requested = args.frameworks.split(",")
    if not set(requested) <= set(FRAMEWORKS):
        parser.error(f"frameworks are among: {', '.join(FRAMEWORKS)}")
    apps, unavailable = load_apps(requested)  # fail early, and in one place, if one is missing
    for name, reason in unavailable.items():
        print(f"-- {name}: {reason}; skipped", file=sys.stderr)
    frameworks = list(apps)

    args.server_cpu = None
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        args.server_cpu = "0"
        os.sched_setaffinity(0, {1})  # this process and the load generator it starts
    per_run = args.warmup + args.duration
    estimate = args.rounds * len(frameworks) * (len(scenarios) * per_run + 2)
    print(
        f"-- {args.load_generator}, {args.connections} connections; about {estimate} s in all",
        file=sys.stderr,
    )

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    environment = describe_environment()
    with tempfile.TemporaryDirectory(prefix="served-bench-") as work_dir:
        results, skipped = measure(frameworks, scenarios, args, Path(work_dir))
    environment["loadavg_end"] = describe_environment()["loadavg"]
    summary = summarise(results, scenarios)
    shown = [fw for fw in frameworks if results[fw]]
    pinning = "server on CPU 0, load on CPU 1" if args.server_cpu else "no CPU pinning"
    capped = ", ".join(
        f"{scenario.name}: {scenario.max_connections}"
        for scenario in scenarios
        if scenario.max_connections and scenario.max_connections < args.connections
    )
    print(
        f"\nServed by hypercorn's trio worker on {HOST}; {args.load_generator}, "
        f"{args.connections} connections{f' ({capped})' if capped else ''}, "
        f"{args.duration} s runs after {args.warmup} s warm-up, "
        f"{pinning}; median over {args.rounds} rounds; ratios paired per round (> 1: more "
        f"req/s). {environment['date']}, {environment['cpus']} CPUs, "
        f"load {environment['loadavg']} -> {environment['loadavg_end']}"
    )
    print(render(summary, shown, scenarios))
    print(
        "\nThe same runs by server CPU time (user + system, hypercorn's processes) per request, "
        "which other processes sharing the server's CPU disturb far less than requests/s; "
        "ratios paired per round (> 1: more requests per CPU second)."
    )
    print(render_cpu(summary, shown, scenarios))
    failures = {
        f"{fw}/{name}": cell["failures"]
        for fw, by_scenario in summary["medians"].items()
        for name, cell in by_scenario.items()
        if cell["failures"]
    }
    if failures:
        print(f"failed requests: {failures}")
    for name, reason in {**unavailable, **skipped}.items():
        print(f"skipped {name}: {reason}")
    if args.json:
        runs = {
            fw: {
                name: [{**asdict(run), "rps": run.rps} for run in runs] for name, runs in s.items()
            }
            for fw, s in results.items()
        }
        Path(args.json).write_text(
            json.dumps(
                {
                    "environment": environment,
                    "arguments": vars(args),
                    "scenarios": {scenario.name: scenario.doc for scenario in scenarios},
                    "runs": runs,
                    "skipped": {**unavailable, **skipped},
                    **summary,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
