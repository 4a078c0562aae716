#!/usr/bin/env python3
"""Files benchmark: big downloads, a small static file and a big upload, served by hypercorn.

Each framework's files app (apps/starlette_files_app.py, apps/toolkit_files_app.py) is served by
hypercorn's trio worker on 127.0.0.1, as in served.py, from a temporary folder made at run time
and removed at the end: a ``--download-mb`` file (FileResponse), a 1 KB file under ``static/``
(StaticFiles) and a ``--upload-mb`` multipart body. Each round starts fresh servers, checks every
route once, then runs each measurement framework after framework, the order rotating:

- ``download_x8``: ``--clients`` curl processes download the big file at once, while the server
  worker's VmRSS (/proc/PID/status) is sampled every 10 ms: throughput in all, and RSS growth
  (highest sample minus the reading just before);
- ``upload``: ``--uploads`` sequential multipart uploads by curl (``request.form()``, the file
  spooled to disk), RSS sampled the same way;
- ``download``: ``--downloads`` sequential downloads by one curl;
- ``static``: wrk on the 1 KB static file, ``-c`` connections for ``-d`` seconds.

    python benchmarks/files.py -r 3
    python benchmarks/files.py -f toolkit -r 1 --download-mb 20 --upload-mb 10 -d 2

Every curl is bounded by ``--max-time``; servers are stopped however the run ends. MB are 10^6
bytes throughout, RSS included.
"""

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.reporting import describe_environment, format_table
from benchmarks.scenarios import Scenario
from benchmarks.served import HOST, Server, check, exit_on_sigterm, wrk_load

FILE_APPS = {
    "starlette": "benchmarks.apps.starlette_files_app",
    "toolkit": "benchmarks.apps.toolkit_files_app",
}
MB = 1_000_000
CHUNK = 1 << 20
BOUNDARY = "----toolkit-files-benchmark-7f3a9c21e5b84d06"
STATIC_TEXT = ("A line of a small static file, served by StaticFiles.\n" * 20)[:1024]
STATIC = Scenario(
    "static",
    "GET /static/small.txt: a 1 KB file through StaticFiles",
    "GET",
    "/static/small.txt",
    expected_text=STATIC_TEXT,
)
CURL_TIMEOUT = 120  # seconds, for any one curl
RSS_INTERVAL = 0.01  # seconds between two RSS samples
THROUGHPUT_TARGET = 1.0  # toolkit/starlette, at least
RSS_TARGET_MB = 20.0  # growth, less than

Measurement = dict[str, float]


def make_files(folder: Path, download_mb: int, upload_mb: int) -> tuple[Path, int]:
    """Write the big file, the static file and the upload body; return the body and its file's size.

    The big file and the uploaded file are random bytes, so nothing on the way can compress them.
    """
    (folder / "static").mkdir()
    (folder / "static" / "small.txt").write_text(STATIC_TEXT)
    write_random(folder / "big.bin", download_mb * MB)
    body = folder / "upload.body"
    with body.open("wb") as out:
        out.write(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        )
    write_random(body, upload_mb * MB, append=True)
    with body.open("ab") as out:
        out.write(f"\r\n--{BOUNDARY}--\r\n".encode())
    return body, upload_mb * MB


def write_random(path: Path, size: int, append: bool = False) -> None:
    """Write ``size`` random bytes to ``path`` (or after its end), a mebibyte at a time."""
    with path.open("ab" if append else "wb") as out:
        for start in range(0, size, CHUNK):
            out.write(os.urandom(min(CHUNK, size - start)))


def vm_rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid``, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class RSSWatcher:
    """Reads a process's RSS on entry, then samples it every 10 ms in a thread until exit.

    ``growth`` is the highest sample minus the first reading, in bytes.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "RSSWatcher":
        self.before = self.peak = vm_rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, vm_rss_bytes(self.pid))

    @property
    def growth(self) -> int:
        """Highest RSS seen minus the RSS before, in bytes."""
        return self.peak - self.before

    def _sample(self) -> None:
        while not self._stop.wait(RSS_INTERVAL):
            with contextlib.suppress(OSError, RuntimeError):
                self.peak = max(self.peak, vm_rss_bytes(self.pid))


def curl(url: str, *extra: str) -> list[str]:
    """A bounded, silent curl command that prints status, bytes moved and seconds last."""
    write_out = "\\n%{http_code} %{size_download} %{size_upload} %{time_total}"
    return ["curl", "-sS", "--max-time", str(CURL_TIMEOUT), "-w", write_out, *extra, url]


def run_curls(commands: list[list[str]]) -> list[tuple[str, int, int, int, float]]:
    """Run curl commands at once; for each, its response body (if kept), status, bytes down and
    up, and seconds. Raises if any fails."""
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for command in commands
    ]
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=CURL_TIMEOUT + 10)
            if process.returncode != 0:
                raise RuntimeError(f"curl failed ({process.returncode}): {stderr.decode()[-500:]}")
            body, _, report = stdout.decode(errors="replace").rpartition("\n")
            status, down, up, seconds = report.split()
            results.append((body, int(status), int(down), int(up), float(seconds)))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


class FilesBench:
    """The measurements of one run: the files, the command line, and one method per measurement."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.download_size = args.download_mb * MB
        self.upload_body, self.upload_size = make_files(folder, args.download_mb, args.upload_mb)
        self.upload_options = [
            "-H",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
            "-H",
            "Expect:",  # no 100-continue round trip
            "--data-binary",
            f"@{self.upload_body}",
        ]

    def check(self, server: Server) -> str | None:
        """Say what is wrong with the server's answers to a static request and a small upload."""
        problem = check(server.port, STATIC)
        if problem is not None:
            return f"static: {problem}"
        small = self.folder / "small.body"
        small.write_bytes(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
            f"Content-Type: text/plain\r\n\r\nhello\r\n--{BOUNDARY}--\r\n".encode()
        )
        options = [*self.upload_options[:-1], f"@{small}"]
        try:
            [(body, status, *_)] = run_curls([curl(self.url(server, "/upload"), *options)])
        except RuntimeError as exc:
            return f"upload: {exc}"
        if status != 200 or json.loads(body or "null") != {"filename": "a.txt", "size": 5}:
            return f"upload: status {status}, body {body[:200]!r}"
        return None

    def url(self, server: Server, path: str) -> str:
        """The URL of ``path`` on ``server``."""
        return f"http://{HOST}:{server.port}{path}"

    def download_x8(self, server: Server) -> Measurement:
        """``--clients`` downloads at once: MB/s in all, server CPU per MB, and the server's RSS
        growth meanwhile."""
        command = curl(self.url(server, "/download"), "-o", "/dev/null")
        cpu_before, started = server.cpu_seconds(), time.perf_counter()
        with RSSWatcher(server.worker_pid()) as rss:
            results = run_curls([command] * self.args.clients)
        seconds = time.perf_counter() - started
        moved_mb = self.args.clients * self.download_size / MB
        for _, status, down, _, _ in results:
            if status != 200 or down != self.download_size:
                raise RuntimeError(f"download: status {status}, {down} bytes")
        return {
            "mb_per_s": moved_mb / seconds,
            "cpu_ms_per_mb": (server.cpu_seconds() - cpu_before) * 1000 / moved_mb,
            "rss_before_mb": rss.before / MB,
            "rss_growth_mb": rss.growth / MB,
        }

    def upload(self, server: Server) -> Measurement:
        """Sequential uploads: median MB/s, server CPU per MB, and the server's RSS growth over
        all of them."""
        command = curl(self.url(server, "/upload"), *self.upload_options)
        speeds = []
        cpu_before = server.cpu_seconds()
        with RSSWatcher(server.worker_pid()) as rss:
            for _ in range(self.args.uploads):
                [(body, status, _, up, seconds)] = run_curls([command])
                answer = json.loads(body or "null") if status == 200 else None
                if answer != {"filename": "big.bin", "size": self.upload_size}:
                    raise RuntimeError(f"upload: status {status}, body {body[:200]!r}")
                speeds.append(up / MB / seconds)
        moved_mb = self.args.uploads * self.upload_size / MB
        return {
            "mb_per_s": statistics.median(speeds),
            "cpu_ms_per_mb": (server.cpu_seconds() - cpu_before) * 1000 / moved_mb,
            "rss_before_mb": rss.before / MB,
            "rss_growth_mb": rss.growth / MB,
        }

    def download(self, server: Server) -> Measurement:
        """Sequential downloads by one client: median MB/s, the server's CPU use (share of a
        CPU) and its CPU time per MB."""
        command = curl(self.url(server, "/download"), "-o", "/dev/null")
        speeds = []
        cpu_before, started = server.cpu_seconds(), time.monotonic()
        for _ in range(self.args.downloads):
            [(_, status, down, _, seconds)] = run_curls([command])
            if status != 200 or down != self.download_size:
                raise RuntimeError(f"download: status {status}, {down} bytes")
            speeds.append(down / MB / seconds)
        cpu_seconds = server.cpu_seconds() - cpu_before
        return {
            "mb_per_s": statistics.median(speeds),
            "server_cpu": cpu_seconds / (time.monotonic() - started),
            "cpu_ms_per_mb": cpu_seconds * 1000 / (self.args.downloads * self.download_size / MB),
        }

    def static(self, server: Server) -> Measurement:
        """wrk on the 1 KB static file: requests/s, p99 and server CPU per request."""
        body_file = self.folder / "no-body"
        if self.args.warmup:
            wrk_load(server.port, STATIC, self.args.warmup, self.args.connections, body_file)
        cpu_before, started = server.cpu_seconds(), time.monotonic()
        result = wrk_load(server.port, STATIC, self.args.duration, self.args.connections, body_file)
        cpu_seconds = server.cpu_seconds() - cpu_before
        if result.failures:
            raise RuntimeError(f"static: {result.failures} failed requests")
        return {
            "rps": result.rps,
            "p99_ms": result.p99_ms,
            "server_cpu": cpu_seconds / (time.monotonic() - started),
            "cpu_us": cpu_seconds * 1e6 / result.requests,
        }


# Run in this order each round: RSS first, on servers that have served only the checks.
MEASUREMENTS = ["download_x8", "upload", "download", "static"]


def measure(
    frameworks: list[str], bench: FilesBench
) -> tuple[dict[str, dict[str, list[Measurement]]], dict[str, str]]:
    """Run every round; return the measurements by framework and name, and what was skipped."""
    args, folder = bench.args, bench.folder
    results: dict[str, dict[str, list[Measurement]]] = {fw: {} for fw in frameworks}
    skipped: dict[str, str] = {}
    environment = {"BENCH_FILES_DIR": str(folder)}
    for round_index in range(args.rounds):
        shift = round_index % len(frameworks)
        order = frameworks[shift:] + frameworks[:shift]
        with contextlib.ExitStack() as stack:
            servers = {}
            for fw in order:
                server = Server(fw, args.server_cpu, folder, f"{FILE_APPS[fw]}:app", environment)
                servers[fw] = stack.enter_context(server)
                problem = bench.check(servers[fw])
                if problem is not None:
                    skipped[fw] = f"wrong response: {problem}"
                    print(f"!! {fw}: {problem}; skipped", file=sys.stderr)
                    del servers[fw]
            for name in MEASUREMENTS:
                run: Callable[[Server], Measurement] = getattr(bench, name)
                for fw, server in servers.items():
                    try:
                        measurement = run(server)
                    except RuntimeError as exc:
                        skipped[f"{fw}/{name}"] = str(exc)
                        print(f"!! {fw}/{name}: {exc}", file=sys.stderr)
                        continue
                    results[fw].setdefault(name, []).append(measurement)
                    shown = "  ".join(f"{key} {value:,.1f}" for key, value in measurement.items())
                    print(f"   round {round_index + 1}/{args.rounds} {name:11} {fw:9} {shown}")
    return results, skipped


def paired_ratio(results: dict[str, dict[str, list[Measurement]]], name: str, key: str) -> Any:
    """Median over rounds of toolkit's figure over Starlette's, or None if either is missing."""
    mine = results.get("toolkit", {}).get(name, [])
    theirs = results.get("starlette", {}).get(name, [])
    if not mine or len(mine) != len(theirs):
        return None
    return statistics.median(a[key] / b[key] for a, b in zip(mine, theirs, strict=True))


CPU: dict[str, Any] = {"number": "{:.2f}", "verdict": "ratio"}  # ratio < 1: toolkit is cheaper
RSS: dict[str, Any] = {"combine": max, "number": "{:.1f}", "verdict": "rss"}


@dataclass(frozen=True)
class Row:
    """One line of the results table: which figure of which measurement, and how to judge it.

    ``verdict``: "throughput" (a paired toolkit/starlette ratio, at least THROUGHPUT_TARGET),
    "ratio" (the paired ratio, no target), "rss" (toolkit's growth under RSS_TARGET_MB), or None.
    """

    label: str
    measurement: str
    figure: str
    combine: Callable[[list[float]], float] = statistics.median
    number: str = "{:,.0f}"
    verdict: str | None = "throughput"


ROWS = [
    Row("download, 1 client (MB/s)", "download", "mb_per_s"),
    Row(
        "download, {clients} clients at once (MB/s in all)",
        "download_x8",
        "mb_per_s",
        verdict="ratio",
    ),
    Row("static 1 KB (req/s)", "static", "rps"),
    Row("static 1 KB (p99 ms)", "static", "p99_ms", number="{:.1f}", verdict=None),
    Row("upload, multipart (MB/s)", "upload", "mb_per_s"),
    Row("download, 1 client (server CPU ms per MB)", "download", "cpu_ms_per_mb", **CPU),
    Row(
        "download, {clients} clients (server CPU ms per MB)", "download_x8", "cpu_ms_per_mb", **CPU
    ),
    Row("static 1 KB (server CPU µs per request)", "static", "cpu_us", verdict="ratio"),
    Row("upload (server CPU ms per MB)", "upload", "cpu_ms_per_mb", **CPU),
    Row(
        "RSS growth, {clients} clients downloading (MB, worst round)",
        "download_x8",
        "rss_growth_mb",
        **RSS,
    ),
    Row("RSS growth, uploads (MB, worst round)", "upload", "rss_growth_mb", **RSS),
]


def render(
    results: dict[str, dict[str, list[Measurement]]], frameworks: list[str], clients: int
) -> tuple[str, dict[str, Any]]:
    """The results as a Markdown table, and the same figures as a dict for --json."""
    header = ["measure", *frameworks, "toolkit/starlette", "target"]
    rows, summary = [], {}
    for spec in ROWS:
        label = spec.label.format(clients=clients)
        row, figures = [label], {}
        for fw in frameworks:
            values = [m[spec.figure] for m in results[fw].get(spec.measurement, [])]
            figures[fw] = spec.combine(values) if values else None
            row.append("-" if figures[fw] is None else spec.number.format(figures[fw]))
        ratio = None
        if spec.verdict in ("throughput", "ratio"):
            ratio = paired_ratio(results, spec.measurement, spec.figure)
        row.append("-" if ratio is None else f"{ratio:.2f}")
        toolkit = figures.get("toolkit")
        if spec.verdict == "throughput" and ratio is not None:
            met = ratio >= THROUGHPUT_TARGET
            row.append(f"≥ {THROUGHPUT_TARGET:.1f}: {'met' if met else 'MISSED'}")
        elif spec.verdict == "rss" and toolkit is not None:
            row.append(
                f"< {RSS_TARGET_MB:.0f} MB: {'met' if toolkit < RSS_TARGET_MB else 'MISSED'}"
            )
        else:
            row.append("-")
        rows.append(row)
        summary[label] = {"figures": figures, "toolkit/starlette": ratio}
    return format_table(header, rows), summary


def main() -> int:
    """Parse the command line, make the files, run the rounds, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "-f", "--frameworks", default=",".join(FILE_APPS), help="comma-separated subset"
    )
    parser.add_argument("--download-mb", type=int, default=100, help="big file size (100)")
    parser.add_argument("--upload-mb", type=int, default=50, help="uploaded file size (50)")
    parser.add_argument("--clients", type=int, default=8, help="downloads at once (8)")
    parser.add_argument("--downloads", type=int, default=3, help="sequential downloads (3)")
    parser.add_argument("--uploads", type=int, default=3, help="sequential uploads (3)")
    parser.add_argument("-d", "--duration", type=int, default=5, help="static: wrk seconds (5)")
    parser.add_argument("-w", "--warmup", type=int, default=1, help="static: warm-up seconds (1)")
    parser.add_argument("-c", "--connections", type=int, default=64, help="static: connections")
    parser.add_argument("--json", metavar="PATH", help="also write every measurement here")
    args = parser.parse_args()
    if not (
        1 <= args.rounds <= 10
        and 1 <= args.download_mb <= 1000
        and 1 <= args.upload_mb <= 1000
        and 1 <= args.clients <= 32
        and 1 <= args.downloads <= 20
        and 1 <= args.uploads <= 20
        and 1 <= args.duration <= 60
        and 0 <= args.warmup <= 10
        and 1 <= args.connections <= 512
    ):
        parser.error("keep it bounded: see --help for each option's range")
    for tool in ("curl", "wrk"):
        if not shutil.which(tool):
            parser.error(f"{tool} is not installed (apt-get install -y {tool})")
    frameworks = args.frameworks.split(",")
    if not set(frameworks) <= set(FILE_APPS):
        parser.error(f"frameworks are among: {', '.join(FILE_APPS)}")

    args.server_cpu = None
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        args.server_cpu = "0"
        os.sched_setaffinity(0, {1})  # this process, and curl and wrk, which it starts

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    environment = describe_environment()
    with tempfile.TemporaryDirectory(prefix="files-bench-") as folder:
        print(f"-- writing {args.download_mb + args.upload_mb} MB of files to {folder}")
        bench = FilesBench(args, Path(folder))
        os.environ["BENCH_FILES_DIR"] = folder
        unavailable = {}
        for fw in list(frameworks):
            try:
                importlib.import_module(FILE_APPS[fw])
            except Exception as exc:
                unavailable[fw] = f"not importable yet ({type(exc).__name__}: {exc})"
                print(f"-- {fw}: {unavailable[fw]}; skipped", file=sys.stderr)
                frameworks.remove(fw)
        if not frameworks:
            return 1
        results, skipped = measure(frameworks, bench)
    environment["loadavg_end"] = describe_environment()["loadavg"]
    table, summary = render(results, frameworks, args.clients)
    pinning = "server on CPU 0, curl and wrk on CPU 1" if args.server_cpu else "no CPU pinning"
    print(
        f"\nFiles served by hypercorn's trio worker on {HOST}: a {args.download_mb} MB download "
        f"(curl), a 1 KB static file (wrk, {args.connections} connections, {args.duration} s), "
        f"a {args.upload_mb} MB multipart upload (curl); {pinning}; median over {args.rounds} "
        f"rounds, ratios paired per round (throughput: > 1, toolkit faster; CPU: < 1, toolkit "
        f"cheaper), RSS growth the worst round. "
        f"{environment['date']}, {environment['cpus']} CPUs, "
        f"load {environment['loadavg']} -> {environment['loadavg_end']}"
    )
    print(table)
    for name, reason in {**unavailable, **skipped}.items():
        print(f"skipped {name}: {reason}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "environment": environment,
                    "arguments": vars(args),
                    "measurements": results,
                    "skipped": {**unavailable, **skipped},
                    "summary": summary,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
