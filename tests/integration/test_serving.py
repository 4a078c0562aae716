"""toolkit.serve and ``python -m toolkit serve`` against real sockets on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from hypercorn.utils import LifespanFailureError

from toolkit.serving import serve

from .asgi_app import RecordingApp

APP_PATH = Path(__file__).with_name("asgi_app.py")


async def wait_for(events: list[str], event: str) -> None:
    while event not in events:
        await trio.sleep(0.005)


async def test_serve_reports_its_url_and_answers() -> None:
    events: list[str] = []
    stop = trio.Event()
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve, RecordingApp(events.append), port=0, shutdown_trigger=stop.wait)
            )
            assert url.startswith("http://127.0.0.1:")
            assert int(url.rsplit(":", 1)[1]) > 0
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/")
            assert (response.status_code, response.text) == (200, "hello")
            stop.set()
    assert events == ["startup", "request /", "response /", "shutdown"]


async def test_hypercorn_options_apply_and_errors_go_to_logging_not_stderr(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = trio.Event()
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(
                    serve,
                    RecordingApp(print),
                    port=0,
                    shutdown_trigger=stop.wait,
                    include_server_header=False,
                )
            )
            async with httpx.AsyncClient(base_url=url) as client:
                ok = await client.get("/")
                failed = await client.get("/error")
            stop.set()
    assert "server" not in ok.headers
    assert failed.status_code == 500
    assert any(
        record.name == "hypercorn.error" and "handler broke" in str(record.exc_info)
        for record in caplog.records
    )
    out, err = capsys.readouterr()
    assert err == ""
    assert "GET /" not in out  # no access log unless asked for


async def test_trigger_drains_in_flight_request_then_runs_lifespan_shutdown() -> None:
    events: list[str] = []
    stop = trio.Event()

    async def stop_once_slow_request_arrives() -> None:
        await wait_for(events, "request /slow")
        stop.set()

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve, RecordingApp(events.append), port=0, shutdown_trigger=stop.wait)
            )
            nursery.start_soon(stop_once_slow_request_arrives)
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.get("/slow")
            assert stop.is_set()
            assert (response.status_code, response.text) == (200, "hello")
        # Leaving the nursery means serve() returned: lifespan shutdown has already run.
    assert events == ["startup", "request /slow", "response /slow", "shutdown"]


async def test_cancelling_serve_stops_at_once_without_waiting_for_requests() -> None:
    events: list[str] = []

    async def hanging_request(url: str) -> None:
        async with httpx.AsyncClient(base_url=url) as client:
            await client.get("/hang")

    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            partial(serve, RecordingApp(events.append), port=0, shutdown_trigger=trio.sleep_forever)
        )
        nursery.start_soon(hanging_request, url)
        with trio.fail_after(2):
            await wait_for(events, "request /hang")
        cancelled_at = trio.current_time()
        nursery.cancel_scope.cancel()
    # hypercorn's graceful_timeout is 3 s; a cancelled serve() must not use it.
    assert trio.current_time() - cancelled_at < 0.5
    assert events == ["startup", "request /hang", "cancelled /hang"]


async def test_lifespan_startup_failure_raises_the_underlying_error() -> None:
    app = RecordingApp(print, startup_failure="database unreachable")
    with (
        trio.fail_after(2),
        pytest.raises(LifespanFailureError, match="database unreachable") as error,
    ):
        await serve(app, port=0, shutdown_trigger=trio.sleep_forever)
    # The traceback still leads to where hypercorn saw the failure.
    assert any(entry.path.name == "lifespan.py" for entry in error.traceback)


async def test_lifespan_startup_failure_is_raised_by_nursery_start() -> None:
    app = RecordingApp(print, startup_failure="database unreachable")
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            with pytest.raises(LifespanFailureError, match="database unreachable"):
                await nursery.start(
                    partial(serve, app, port=0, shutdown_trigger=trio.sleep_forever)
                )


async def test_without_trigger_sigint_shuts_down_gracefully() -> None:
    events: list[str] = []
    handler_before = signal.getsignal(signal.SIGINT)
    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve, RecordingApp(events.append), port=0))
            # Let the server's tasks, the signal receiver among them, reach their first wait.
            await trio.testing.wait_all_tasks_blocked()
            os.kill(os.getpid(), signal.SIGINT)
    assert events == ["startup", "shutdown"]
    assert signal.getsignal(signal.SIGINT) is handler_before


async def test_without_trigger_outside_main_thread_serves_until_cancelled() -> None:
    events: list[str] = []

    async def serve_briefly() -> str:
        async with trio.open_nursery() as nursery:
            url: str = await nursery.start(partial(serve, RecordingApp(events.append), port=0))
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/")).text == "hello"
            nursery.cancel_scope.cancel()
        return url

    with trio.fail_after(2):
        url = await trio.to_thread.run_sync(trio.run, serve_briefly)
    assert url.startswith("http://127.0.0.1:")
    assert events[:2] == ["startup", "request /"]
    assert "shutdown" not in events


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def get_when_up(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        while True:
            try:
                return await client.get(url)
            except httpx.ConnectError:
                await trio.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_cli_serves_app_and_shuts_down_gracefully_on_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    port = free_port()
    command = [sys.executable, "-m", "toolkit", "serve", f"{APP_PATH}:app", "--port", str(port)]
    output = tmp_path / "output.txt"
    with output.open("wb") as sink:
        # A session of its own, so cleanup can reach hypercorn's worker process too.
        process = await trio.lowlevel.open_process(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        with trio.fail_after(10):
            response = await get_when_up(f"http://127.0.0.1:{port}/")
        assert (response.status_code, response.text) == (200, "hello")
        process.send_signal(signum)
        with trio.fail_after(10):
            returncode = await process.wait()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    text = output.read_text()
    assert returncode == 0, text
    assert f"Running on http://127.0.0.1:{port}" in text
    events = [line for line in text.splitlines() if line in {"startup", "shutdown"}]
    assert events == ["startup", "shutdown"], text
