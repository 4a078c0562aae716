"""toolkit.testing.pytest_plugin: the ``client`` and ``live_server`` fixtures, run by pytester."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from toolkit.testing import pytest_plugin

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest

EVENTS = []


class RecordingApp:
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                phase = (await receive())["type"].removeprefix("lifespan.")
                EVENTS.append(phase)
                if phase == "startup":
                    scope["state"]["mood"] = "ready"
                await send({"type": f"lifespan.{phase}.complete"})
                if phase == "shutdown":
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["state"]["mood"].encode()})


@pytest.fixture
def app():
    return RecordingApp()


@pytest.fixture
def events():
    return EVENTS
"""

TESTS = """
import httpx
import pytest
import trio

from toolkit.testclient import AsyncTestClient


{mark}
async def test_client_has_run_startup(client, events):
    assert isinstance(client, AsyncTestClient)
    assert events == ["startup"]
    assert (await client.get("/")).text == "ready"


{mark}
async def test_client_was_shut_down_after_its_test(events):
    assert events == ["startup", "shutdown"]
    events.clear()


{mark}
async def test_live_server_serves_over_real_sockets(live_server, events):
    assert live_server.host == "127.0.0.1"
    assert live_server.url == f"http://127.0.0.1:{{live_server.port}}"
    with trio.fail_after(5):
        async with httpx.AsyncClient(base_url=live_server.url) as http:
            assert (await http.get("/")).text == "ready"
    assert events == ["startup"]


{mark}
async def test_live_server_was_shut_down_gracefully_after_its_test(events):
    assert events == ["startup", "shutdown"]
"""


def run_inner_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *, trio_mode: bool
) -> pytest.RunResult:
    # Load the plugins by module name only, whether or not toolkit's entry point is installed.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini(f"[pytest]\ntrio_mode = {'true' if trio_mode else 'false'}\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_app=TESTS.format(mark="" if trio_mode else "@pytest.mark.trio"))
    return pytester.runpytest("-p", "pytest_trio.plugin", "-p", "toolkit.testing.pytest_plugin")


def test_fixtures_in_trio_mode(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_inner_session(pytester, monkeypatch, trio_mode=True)
    result.assert_outcomes(passed=4)


def test_fixtures_with_trio_marks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_inner_session(pytester, monkeypatch, trio_mode=False)
    result.assert_outcomes(passed=4)


def test_client_needs_an_app_fixture(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile("async def test_it(client):\n    pass\n")
    result = pytester.runpytest("-p", "pytest_trio.plugin", "-p", "toolkit.testing.pytest_plugin")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'app' not found*"])


def test_plugin_defines_fixtures_only() -> None:
    assert [name for name in vars(pytest_plugin) if name.startswith("pytest_")] == []


def test_entry_point_names_the_plugin_when_installed() -> None:
    installed = entry_points(group="pytest11", name="toolkit")
    if not installed:
        pytest.skip("toolkit is not installed with its entry points")
    assert [ep.value for ep in installed] == ["toolkit.testing.pytest_plugin"]
