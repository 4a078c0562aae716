"""toolkit.testclient: AsyncTestClient in the test's trio run; TestClient through a portal."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.apps import read_body, respond
from toolkit.applications import App
from toolkit.background import BackgroundTask
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.routing import Route
from toolkit.testclient import AsyncTestClient, TestClient
from toolkit.testing.lifespan import LifespanFailure
from toolkit.types import Receive, Scope, Send


class EchoApp:
    """Answers with a line describing the request; records lifespan events and run identities."""

    def __init__(self, *, fail_startup: bool = False) -> None:
        self.events: list[str] = []
        self.trio_tokens: list[object] = []
        self.fail_startup = fail_startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.trio_tokens.append(trio.lowlevel.current_trio_token())
        if scope["type"] == "lifespan":
            while True:
                phase = (await receive())["type"].removeprefix("lifespan.")
                self.events.append(phase)
                if phase == "startup" and self.fail_startup:
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                if phase == "startup":
                    scope["state"]["greeting"] = "hello"
                await send({"type": f"lifespan.{phase}.complete"})
                if phase == "shutdown":
                    return
        body = b"".join(m["body"] for m in await read_body(receive))
        headers = dict(scope["headers"])
        line = (
            f"{scope['method']} {scope['root_path']}|{scope['path']} "
            f"state={scope['state'].get('greeting')} client={scope['client'][0]} "
            f"agent={headers.get(b'user-agent', b'').decode()} body={body.decode()}"
        )
        await respond(send, line.encode())


# AsyncTestClient


async def test_async_client_runs_lifespan_around_the_block() -> None:
    app = EchoApp()
    async with AsyncTestClient(app) as client:
        assert app.events == ["startup"]
        response = await client.post("/items", content=b"data")
        assert app.events == ["startup"]
    assert app.events == ["startup", "shutdown"]
    assert response.text == (
        "POST |/items state=hello client=testclient agent=testclient body=data"
    )
    assert response.request.url == "http://testserver/items"


async def test_async_client_runs_in_the_tests_own_trio_run() -> None:
    app = EchoApp()
    async with AsyncTestClient(app) as client:
        await client.get("/")
    assert set(app.trio_tokens) == {trio.lowlevel.current_trio_token()}


async def test_async_client_options() -> None:
    app = EchoApp()
    async with AsyncTestClient(
        app,
        base_url="http://example.org/api/",
        root_path="/api",
        headers={"User-Agent": "custom"},
        client=("192.0.2.1", 4000),
        lifespan=False,
    ) as client:
        response = await client.get("items")
    assert response.text == "GET /api|/api/items state=None client=192.0.2.1 agent=custom body="
    assert app.events == []


async def test_async_client_startup_failure_raises() -> None:
    app = EchoApp(fail_startup=True)
    with pytest.raises(LifespanFailure, match="no database"):
        async with AsyncTestClient(app):
            pytest.fail("the block must not run")


async def test_async_client_raise_server_exceptions_both_ways() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("boom")

    async with AsyncTestClient(app, lifespan=False) as client:
        with pytest.raises(LookupError, match="boom"):
            await client.get("/")
    async with AsyncTestClient(app, raise_server_exceptions=False) as client:
        assert (await client.get("/")).status_code == 500


async def test_async_client_wait_idle_joins_background_work() -> None:
    done = trio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"accepted")
        await trio.sleep(0.01)
        done.set()

    async with AsyncTestClient(app, lifespan=False) as client:
        assert (await client.get("/")).text == "accepted"
        assert not done.is_set()
        await client.wait_idle()
        assert done.is_set()


async def test_async_client_a_block_error_propagates_unwrapped() -> None:
    app = EchoApp()
    with pytest.raises(AssertionError, match="from the test"):
        async with AsyncTestClient(app) as client:
            await client.get("/")
            raise AssertionError("from the test")
    assert app.events == ["startup"]  # like a cancelled server: no graceful shutdown


async def test_async_client_with_a_toolkit_app() -> None:
    log: list[str] = []

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        yield {"name": "toolkit"}

    async def home(request: Request) -> Response:
        name = request.state.name
        return PlainTextResponse(
            f"hi {name}", background=BackgroundTask(log.append, f"after {name}")
        )

    app = App(routes=[Route("/", home)], lifespan=lifespan)
    async with AsyncTestClient(app) as client:
        assert (await client.get("/")).text == "hi toolkit"
        await client.wait_idle()
    assert log == ["after toolkit"]


# TestClient


def test_sync_client_without_with_uses_a_short_lived_run_per_request() -> None:
    app = EchoApp()
    client = TestClient(app)
    first = client.get("/a")
    second = client.post("/b", content=b"x")
    assert first.text == "GET |/a state=None client=testclient agent=testclient body="
    assert second.text == "POST |/b state=None client=testclient agent=testclient body=x"
    assert app.events == []  # no lifespan outside `with`
    assert len(set(app.trio_tokens)) == 2
    assert client.portal is None


def test_sync_client_with_keeps_one_run_and_runs_lifespan() -> None:
    app = EchoApp()
    with TestClient(app) as client:
        assert app.events == ["startup"]
        assert client.portal is not None
        assert client.get("/").text.startswith("GET |/ state=hello")
        client.get("/")
    assert app.events == ["startup", "shutdown"]
    assert len(set(app.trio_tokens)) == 1  # lifespan and both requests
    assert client.portal is None


def test_sync_client_runs_the_app_in_another_thread() -> None:
    threads: list[threading.Thread] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        threads.append(threading.current_thread())
        await respond(send)

    TestClient(app).get("/")
    assert threads and threads[0] is not threading.current_thread()


def test_sync_client_startup_failure_raises() -> None:
    app = EchoApp(fail_startup=True)
    with pytest.raises(LifespanFailure, match="no database"), TestClient(app):
        pytest.fail("the block must not run")


def test_sync_client_startup_error_of_a_toolkit_app_is_reported() -> None:
    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        raise ValueError("bad config")
        yield

    # App reports the failure (with its traceback) in lifespan.startup.failed.
    with (
        pytest.raises(LifespanFailure, match="ValueError: bad config"),
        TestClient(App(lifespan=lifespan)),
    ):
        pass


def test_sync_client_cookies_persist() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/login":
            await respond(send, headers=[(b"set-cookie", b"session=abc; Path=/")])
        else:
            cookie = dict(scope["headers"]).get(b"cookie", b"")
            await respond(send, cookie)

    client = TestClient(app, cookies={"theme": "dark"})
    client.get("/login")
    assert client.get("/whoami").text == "theme=dark; session=abc"
    with TestClient(app) as client:
        client.get("/login")
        assert client.get("/whoami").text == "session=abc"


def test_sync_client_root_path() -> None:
    response = TestClient(EchoApp(), root_path="/prefix").get("/prefix/x")
    assert response.text.startswith("GET /prefix|/prefix/x ")


def test_sync_client_raise_server_exceptions_both_ways() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        TestClient(app).get("/")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/")
    assert response.status_code == 500


def test_sync_client_returns_after_background_work_like_starlette() -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"ok")
        await trio.sleep(0.01)
        log.append("background done")

    with TestClient(app) as client:
        assert client.get("/").text == "ok"
        assert log == ["background done"]


def test_sync_client_raises_background_errors() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"ok")
        raise LookupError("in background")

    with pytest.raises(LookupError, match="in background"):
        TestClient(app).get("/")
    with TestClient(app) as client, pytest.raises(LookupError, match="in background"):
        client.get("/")


def test_sync_client_sends_an_iterator_body_in_chunks() -> None:
    received: list[tuple[bytes, bool]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.extend((m["body"], m["more_body"]) for m in await read_body(receive))
        await respond(send)

    def upload() -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    TestClient(app).post("/", content=upload())
    assert received == [(b"a", True), (b"b", False)]


def test_sync_client_streams_and_an_early_close_ends_the_app() -> None:
    seen: list[str] = []

    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for n in range(10**9):
                await send({"type": "http.response.body", "body": b"%d\n" % n, "more_body": True})
        except trio.Cancelled:
            seen.append("cancelled")
            raise

    for client in (TestClient(endless), TestClient(endless).__enter__()):
        with client.stream("GET", "/") as response:
            assert list(zip(range(3), response.iter_lines(), strict=False)) == [
                (0, "0"),
                (1, "1"),
                (2, "2"),
            ]
        if client.portal is not None:
            client.__exit__(None, None, None)
    assert seen == ["cancelled", "cancelled"]


def test_sync_client_closes_streams_left_open_on_exit() -> None:
    async def endless(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await send({"type": "http.response.body", "body": b"x", "more_body": True})

    with TestClient(endless) as client:
        client.send(client.build_request("GET", "/"), stream=True)  # never closed


def test_sync_client_accepts_only_the_trio_backend_and_passes_its_options() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await trio.sleep(3600)  # instant under the autojump clock below
        await respond(send, b"slept")

    with pytest.raises(ValueError, match="trio only"):
        TestClient(app, backend="asyncio")  # type: ignore[arg-type]
    clock = trio.testing.MockClock(autojump_threshold=0)
    client = TestClient(app, backend="trio", backend_options={"clock": clock})
    assert client.get("/").text == "slept"


async def test_sync_client_refuses_to_block_a_trio_run() -> None:
    client = TestClient(EchoApp())
    with pytest.raises(RuntimeError, match="use AsyncTestClient"):
        client.get("/")
    with pytest.raises(RuntimeError, match="use AsyncTestClient"):
        client.__enter__()


def test_clients_are_not_collected_as_tests() -> None:
    assert TestClient.__test__ is False
    assert AsyncTestClient.__test__ is False


def test_sync_client_is_an_httpx_client() -> None:
    assert isinstance(TestClient(EchoApp()), httpx.Client)
