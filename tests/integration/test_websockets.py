"""WebSockets over real sockets: hypercorn's trio worker on 127.0.0.1, trio-websocket clients."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.apps import echo
from toolkit.applications import App
from toolkit.exceptions import HTTPException
from toolkit.routing import WebSocketRoute
from toolkit.testing.live import LiveServer, live_server
from toolkit.websockets import WebSocket, WebSocketDisconnect


def ws_url(server: LiveServer, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


async def test_echo_of_text_and_binary_frames() -> None:
    app = App(routes=[WebSocketRoute("/ws", echo)])
    with trio.fail_after(10):
        async with live_server(app) as server, open_websocket_url(ws_url(server, "/ws")) as ws:
            await ws.send_message("héllo")
            assert await ws.get_message() == "héllo"
            await ws.send_message(b"\x00\x01\xff")
            assert await ws.get_message() == b"\x00\x01\xff"
            big = "x" * 200_000  # reassembled from several frames
            await ws.send_message(big)
            assert await ws.get_message() == big


async def test_the_seeds_echo_example() -> None:
    from examples.echo import app

    with trio.fail_after(10):
        async with live_server(app) as server, open_websocket_url(ws_url(server, "/ws")) as ws:
            await ws.send_message("Hello")
            assert await ws.get_message() == "Received: Hello"


async def test_one_hundred_concurrent_sessions() -> None:
    app = App(routes=[WebSocketRoute("/ws", echo)])
    replies: dict[int, list[str | bytes]] = {}

    async def client(server: LiveServer, number: int) -> None:
        async with open_websocket_url(ws_url(server, "/ws")) as ws:
            got = []
            for turn in range(3):
                await ws.send_message(f"{number}:{turn}")
                got.append(await ws.get_message())
            replies[number] = got

    with trio.fail_after(30):
        async with live_server(app) as server, trio.open_nursery() as nursery:
            for number in range(100):
                nursery.start_soon(client, server, number)
    assert replies == {n: [f"{n}:0", f"{n}:1", f"{n}:2"] for n in range(100)}


async def _handshake(server: LiveServer, path: str) -> trio.SocketStream:
    """Open a WebSocket by hand, so the test can drop the TCP connection without a close frame."""
    stream = await trio.open_tcp_stream(server.host, server.port)
    await stream.send_all(
        f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += await stream.receive_some(4096)
    assert response.startswith(b"HTTP/1.1 101"), response
    return stream


async def test_a_vanished_clients_server_side_children_are_cancelled_within_a_second() -> None:
    cancelled_at: dict[str, float] = {}
    running = trio.Event()
    all_cancelled = trio.Event()

    async def watch(name: str) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled_at[name] = trio.current_time()
            if len(cancelled_at) == 3:
                all_cancelled.set()

    async def session(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(watch, "reader")
        websocket.nursery.start_soon(watch, "heartbeat")
        running.set()
        await watch("handler")  # busy: it never receives, so only the pump sees the peer go

    app = App(routes=[WebSocketRoute("/ws", session)])
    with trio.fail_after(10):
        async with live_server(app) as server:
            stream = await _handshake(server, "/ws")
            await running.wait()
            await stream.aclose()  # gone: no close frame
            vanished_at = trio.current_time()
            with trio.fail_after(1):
                await all_cancelled.wait()
    assert set(cancelled_at) == {"reader", "heartbeat", "handler"}
    assert max(cancelled_at.values()) - vanished_at < 1


async def test_close_codes_both_ways() -> None:
    seen: list[int] = []
    seen_event = trio.Event()

    async def session(websocket: WebSocket) -> None:
        await websocket.accept()
        if websocket.query_params.get("close"):
            await websocket.close(code=4001, reason="bye")
            return
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as disconnect:
            seen.append(disconnect.code)
            seen_event.set()

    app = App(routes=[WebSocketRoute("/ws", session)])
    with trio.fail_after(10):
        async with live_server(app) as server:
            async with open_websocket_url(ws_url(server, "/ws?close=1")) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
            assert closed.value.reason is not None
            assert (closed.value.reason.code, closed.value.reason.reason) == (4001, "bye")
            async with open_websocket_url(ws_url(server, "/ws")) as ws:
                await ws.aclose(code=4002, reason="later")
            await seen_event.wait()
    # hypercorn reports any close the client starts as 1006 (pgjones/hypercorn#127).
    assert seen in ([1006], [4002])


async def test_denial_response_and_http_exception_before_accept() -> None:
    async def session(websocket: WebSocket) -> None:
        raise HTTPException(401, detail="token required", headers={"www-authenticate": "Bearer"})

    app = App(routes=[WebSocketRoute("/ws", session)])
    with trio.fail_after(10):
        async with live_server(app) as server:
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(ws_url(server, "/ws")):
                    pass
            with pytest.raises(ConnectionRejected) as unmatched:
                async with open_websocket_url(ws_url(server, "/nowhere")):
                    pass
    assert rejected.value.status_code == 401
    assert (b"www-authenticate", b"Bearer") in rejected.value.headers
    assert rejected.value.body == b"token required"
    assert unmatched.value.status_code == 403  # closed before accept


async def test_oversized_message_closes_with_1009() -> None:
    app = App(routes=[WebSocketRoute("/ws", echo)], websocket_max_message_size=1000)
    with trio.fail_after(10):
        async with live_server(app) as server, open_websocket_url(ws_url(server, "/ws")) as ws:
            await ws.send_message("x" * 1000)
            assert await ws.get_message() == "x" * 1000
            await ws.send_message("x" * 1001)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1009


async def test_unhandled_error_closes_with_1011_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def session(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("boom")

    app = App(routes=[WebSocketRoute("/ws", session)])
    with trio.fail_after(10), caplog.at_level(logging.ERROR):
        async with live_server(app) as server, open_websocket_url(ws_url(server, "/ws")) as ws:
            await ws.send_message("go")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
    assert closed.value.reason is not None
    assert closed.value.reason.code == 1011
    [logged] = [record for record in caplog.records if record.exc_info]
    assert logged.name == "hypercorn.error"
    assert logged.exc_info is not None
    assert repr(logged.exc_info[1]) == "ValueError('boom')"


async def test_chat_example_delivers_within_rooms_only() -> None:
    import httpx

    from examples.chat import app

    async def next_json(ws: Any) -> Any:
        return json.loads(await ws.get_message())

    with trio.fail_after(15):
        async with live_server(app) as server:
            async with httpx.AsyncClient(base_url=server.url) as http:
                page = await http.get("/")
            assert page.status_code == 200
            assert "new WebSocket" in page.text
            async with open_websocket_url(ws_url(server, "/ws/a?name=ann")) as ann:
                assert await next_json(ann) == {"name": "*", "text": "ann joined"}
                async with open_websocket_url(ws_url(server, "/ws/a?name=al")) as al:
                    assert await next_json(ann) == {"name": "*", "text": "al joined"}
                    assert await next_json(al) == {"name": "*", "text": "al joined"}
                    async with open_websocket_url(ws_url(server, "/ws/b?name=bo")) as bo:
                        assert await next_json(bo) == {"name": "*", "text": "bo joined"}
                        await ann.send_message("hello room a")
                        await bo.send_message("hello room b")
                        from_ann = {"name": "ann", "text": "hello room a"}
                        assert await next_json(ann) == from_ann
                        assert await next_json(al) == from_ann
                        assert await next_json(bo) == {"name": "bo", "text": "hello room b"}
                        await al.send_message("second")
                        # Nothing from room b came in between.
                        assert await next_json(ann) == {"name": "al", "text": "second"}
                        assert await next_json(al) == {"name": "al", "text": "second"}
                        await bo.send_message("still b")
                        assert await next_json(bo) == {"name": "bo", "text": "still b"}
                    # al leaves: the room hears of it (its handler cleans up after the disconnect)
                assert await next_json(ann) == {"name": "*", "text": "al left"}
