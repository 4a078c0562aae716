"""toolkit.testing.transport: an ASGI app served as trio tasks, with hypercorn's semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import trio

from tests.apps import read_body, respond
from toolkit.testing.transport import ASGITransport
from toolkit.types import Message, Receive, Scope, Send

App = Callable[[Scope, Receive, Send], Awaitable[None]]


def open_client(app: App, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=ASGITransport(app, **options), base_url="http://testserver")


async def test_scope_mirrors_hypercorn() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await respond(send)

    async with open_client(app, root_path="/mnt", client=("10.0.0.1", 1234)) as client:
        await client.get("/caf%C3%A9/a%2Fb?x=1&y=%20", headers={"X-Custom": "Value"})

    [scope] = scopes
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.1"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/a/b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == "/mnt"
    assert (b"host", b"testserver") in scope["headers"]
    assert (b"x-custom", b"Value") in scope["headers"]
    assert all(name == name.lower() for name, _ in scope["headers"])
    assert scope["client"] == ("10.0.0.1", 1234)
    assert scope["server"] == ("testserver", 80)
    assert scope["extensions"] == {}
    assert scope["state"] == {}


async def test_scope_server_uses_the_url_port_or_the_scheme_default() -> None:
    servers: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        servers.append((scope["scheme"], scope["server"]))
        await respond(send)

    async with open_client(app) as client:
        await client.get("https://example.org/")
        await client.get("http://example.org:8080/")
    assert servers == [("https", ("example.org", 443)), ("http", ("example.org", 8080))]


async def test_request_body_arrives_chunk_by_chunk() -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.extend(await read_body(receive))
        await respond(send)

    async def upload() -> AsyncIterator[bytes]:
        for chunk in (b"one", b"", b"two", b"three"):
            yield chunk

    async with open_client(app) as client:
        await client.post("/", content=upload())
    assert [(m["body"], m["more_body"]) for m in received] == [
        (b"one", True),
        (b"two", True),
        (b"three", False),
    ]
    assert {m["type"] for m in received} == {"http.request"}


async def test_empty_and_single_chunk_bodies_are_one_message() -> None:
    received: list[list[Message]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await read_body(receive))
        await respond(send)

    async with open_client(app) as client:
        await client.get("/")
        await client.post("/", content=b"payload")
    assert received == [
        [{"type": "http.request", "body": b"", "more_body": False}],
        [{"type": "http.request", "body": b"payload", "more_body": False}],
    ]


async def test_response_body_streams_before_the_app_finishes() -> None:
    go_on = trio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await go_on.wait()  # only the test reading "first" can release this
        await send({"type": "http.response.body", "body": b"second"})

    async with open_client(app) as client, client.stream("GET", "/") as response:
        chunks = response.aiter_raw()
        with trio.fail_after(1):
            assert await anext(chunks) == b"first"
        go_on.set()
        assert [chunk async for chunk in chunks] == [b"second"]


async def test_closing_a_stream_early_delivers_http_disconnect() -> None:
    seen: list[Message] = []
    sends_after_leaving = trio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"tick", "more_body": True})
        seen.append(await receive())  # pending while the client reads
        # Sends after the client left are dropped, not errors, as hypercorn does.
        await send({"type": "http.response.body", "body": b"tock", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        sends_after_leaving.set()

    async with open_client(app) as client:
        async with client.stream("GET", "/") as response:
            assert await anext(response.aiter_raw()) == b"tick"
        with trio.fail_after(1):
            await sends_after_leaving.wait()
    assert seen == [{"type": "http.disconnect"}]


async def test_disconnect_follows_the_last_body_message_at_once() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await respond(send, b"done")
        seen.append(await receive())

    transport = ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/")
        with trio.fail_after(1):
            await transport.wait_idle()
    assert response.content == b"done"
    assert seen == [{"type": "http.disconnect"}]


async def test_disconnect_is_delivered_once_then_receive_blocks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    blocked: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await respond(send)
        assert (await receive())["type"] == "http.disconnect"
        with trio.move_on_after(60) as scope_:
            await receive()
        blocked.append(scope_.cancelled_caught)

    async with open_client(app) as client:
        await client.get("/")
    assert blocked == [True]


async def test_state_is_a_shallow_copy_per_request() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope["state"]))
        scope["state"]["counter"] += 1
        scope["state"]["new"] = True
        scope["state"]["items"].append(len(seen))
        await respond(send)

    state: dict[str, Any] = {"counter": 0, "items": []}
    async with open_client(app, state=state) as client:
        await client.get("/")
        await client.get("/")
    assert [s["counter"] for s in seen] == [0, 0]
    assert ["new" in s for s in seen] == [False, False]
    assert state == {"counter": 0, "items": [1, 2]}  # top level copied, values shared


async def test_an_error_before_the_response_reaches_the_caller() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("boom")

    async with open_client(app) as client:
        with pytest.raises(LookupError, match="boom"):
            await client.get("/")


async def test_a_single_error_group_is_unwrapped() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def fail() -> None:
            raise LookupError("in a child task")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail)

    async with open_client(app) as client:
        with pytest.raises(LookupError, match="in a child task"):
            await client.get("/")


async def test_an_error_becomes_a_500_when_not_raised() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("boom")

    async with open_client(app, raise_app_exceptions=False) as client:
        response = await client.get("/")
    assert response.status_code == 500
    assert response.headers["content-length"] == "0"
    assert response.content == b""


async def test_an_app_that_sends_no_response_is_an_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        pass

    async with open_client(app) as client:
        with pytest.raises(RuntimeError, match="without starting a response"):
            await client.get("/")
    async with open_client(app, raise_app_exceptions=False) as client:
        assert (await client.get("/")).status_code == 500


async def test_an_error_mid_body_is_raised_by_the_body_read() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise LookupError("mid-body")

    async with open_client(app) as client, client.stream("GET", "/") as response:
        assert response.status_code == 200
        with pytest.raises(LookupError, match="mid-body"):
            await response.aread()

    async with open_client(app, raise_app_exceptions=False) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/")


async def test_an_app_returning_mid_body_is_an_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    async with open_client(app) as client:
        with pytest.raises(RuntimeError, match="without completing the response body"):
            await client.get("/")


async def test_messages_out_of_order_raise_in_the_app() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.body", "body": b"no start"})

    async with open_client(app) as client:
        with pytest.raises(RuntimeError, match=r"Unexpected ASGI message 'http\.response\.body'"):
            await client.get("/")


async def test_background_work_does_not_hold_the_response() -> None:
    release = trio.Event()
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"ok")
        await release.wait()
        log.append("background done")

    transport = ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with trio.fail_after(1):
            response = await client.get("/")
        assert response.content == b"ok"
        assert log == []
        release.set()
        await transport.wait_idle()
        assert log == ["background done"]


async def test_leaving_the_client_waits_for_request_tasks() -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send)
        await trio.sleep(0.01)
        log.append("background done")

    async with open_client(app) as client:
        await client.get("/")
        assert log == []
    assert log == ["background done"]


async def test_an_error_after_the_response_is_raised_by_wait_idle_and_exit() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send)
        raise LookupError("after the response")

    transport = ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/")).status_code == 200
        with pytest.raises(LookupError, match="after the response"):
            await transport.wait_idle()
        await transport.wait_idle()  # reported once

    with pytest.raises(LookupError, match="after the response"):
        async with open_client(app) as client:
            await client.get("/")

    async with open_client(app, raise_app_exceptions=False) as client:
        await client.get("/")  # dropped, as a server would only log it


async def test_head_responses_have_no_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"ignored for HEAD")

    async with open_client(app) as client:
        response = await client.head("/")
    assert response.status_code == 200
    assert response.content == b""


async def test_a_response_left_open_is_disconnected_when_the_client_closes() -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        seen.append(await receive())

    with trio.fail_after(1):
        async with open_client(app) as client:
            request = client.build_request("GET", "/")
            await client.send(request, stream=True)  # never read nor closed
    assert seen == [{"type": "http.disconnect"}]


async def test_a_cancelled_request_disconnects_the_app(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        seen.append(await receive())

    async with open_client(app) as client:
        with trio.move_on_after(5):
            await client.get("/")
    assert seen == [{"type": "http.disconnect"}]


async def test_requests_need_an_open_transport() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send)

    client = open_client(app)
    with pytest.raises(RuntimeError, match="Open the client first"):
        await client.get("/")


async def test_an_error_in_the_block_propagates_unwrapped() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send)

    with pytest.raises(KeyError):
        async with open_client(app) as client:
            await client.get("/")
            raise KeyError("from the test")


async def test_a_block_error_cancels_request_tasks() -> None:
    cancelled = trio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send)
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    with trio.fail_after(1), pytest.raises(KeyError):
        async with open_client(app) as client:
            await client.get("/")
            raise KeyError("from the test")
    assert cancelled.is_set()
