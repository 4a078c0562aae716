"""WebSocketEndpoint through both test clients: the seed's echo, encodings, the three hooks."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import toolkit.websockets
from tests.clients import Connect
from toolkit.applications import App
from toolkit.endpoints import WebSocketEndpoint
from toolkit.routing import WebSocketRoute
from toolkit.websockets import WebSocket, WebSocketDisconnect


class Echo(WebSocketEndpoint):
    encoding = "text"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(f"Received: {data}")


async def test_the_seeds_echo_works_as_written(connect: Connect) -> None:
    app = App()
    app.add_websocket_route("/ws", Echo)
    async with connect(app) as ws:
        await ws.send_text("Hello, world!")
        assert await ws.receive_text() == "Received: Hello, world!"
        await ws.send_text("again")
        assert await ws.receive_text() == "Received: again"


class Recorder(WebSocketEndpoint):
    """Echoes the decoded data's repr; records every on_disconnect close code."""

    closes: list[int]

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(repr(data))

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        await trio.sleep(0)  # not cancelled: the session is over, this runs after it
        self.closes.append(close_code)


def recorder(encoding: str | None) -> tuple[type[Recorder], list[int]]:
    closes: list[int] = []
    endpoint = type("R", (Recorder,), {"encoding": encoding, "closes": closes})
    return endpoint, closes


@pytest.mark.parametrize(
    ("encoding", "message", "decoded"),
    [
        ("text", {"text": "hi"}, "'hi'"),
        ("bytes", {"bytes": b"hi"}, "b'hi'"),
        ("json", {"text": '{"a": [1]}'}, "{'a': [1]}"),
        ("json", {"bytes": b'{"a": 2}'}, "{'a': 2}"),
        (None, {"text": "t"}, "'t'"),
        (None, {"bytes": b"b"}, "b'b'"),
    ],
)
async def test_encodings_decode(
    connect: Connect, encoding: str | None, message: dict[str, Any], decoded: str
) -> None:
    endpoint, closes = recorder(encoding)
    async with connect(App(routes=[WebSocketRoute("/ws", endpoint)])) as ws:
        await ws.send({"type": "websocket.receive", **message})
        assert await ws.receive_text() == decoded
        await ws.close(4001)
    # Leaving waited for the app task, on_disconnect included.
    assert closes == [4001]


@pytest.mark.parametrize(
    ("encoding", "message", "reason"),
    [
        ("text", {"bytes": b"x"}, "Expected text websocket messages, but got bytes"),
        ("bytes", {"text": "x"}, "Expected bytes websocket messages, but got text"),
        ("json", {"text": "{oops"}, "Malformed JSON"),
        ("json", {"bytes": b"\xff"}, "Malformed JSON"),
    ],
)
async def test_undecodable_messages_close_with_1003(
    connect: Connect, encoding: str, message: dict[str, Any], reason: str
) -> None:
    endpoint, closes = recorder(encoding)
    async with connect(App(routes=[WebSocketRoute("/ws", endpoint)])) as ws:
        await ws.send({"type": "websocket.receive", **message})
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (1003, reason)
    assert closes == [1003]


async def test_an_unknown_encoding_is_a_programming_error() -> None:
    endpoint, _ = recorder("xml")
    scope = {"type": "websocket"}
    instance = endpoint(scope, None, None)  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="Unsupported 'encoding' attribute xml"):
        await instance.decode(None, {"type": "websocket.receive", "text": "x"})  # type: ignore[arg-type]


async def test_on_connect_may_refuse_or_pick_a_subprotocol(connect: Connect) -> None:
    class Picky(WebSocketEndpoint):
        async def on_connect(self, websocket: WebSocket) -> None:
            offered = websocket.scope["subprotocols"]
            if "v2" not in offered:
                await websocket.close(code=4400, reason="v2 only")
                return
            await websocket.accept(subprotocol="v2")

    app = App(routes=[WebSocketRoute("/ws", Picky)])
    async with connect(app, subprotocols=["v1", "v2"]) as ws:
        assert ws.accepted_subprotocol == "v2"
    with pytest.raises(WebSocketDisconnect) as refused:
        async with connect(app, subprotocols=["v1"]):
            pass
    assert (refused.value.code, refused.value.reason) == (4400, "v2 only")


async def test_a_busy_on_receive_is_cancelled_when_the_peer_leaves(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(toolkit.websockets, "WATCH_DELAY", 0.01)  # a quick watchdog
    cancelled = trio.Event()
    closes: list[int] = []

    class Slow(WebSocketEndpoint):
        async def on_receive(self, websocket: WebSocket, data: Any) -> None:
            try:
                await websocket.send_text("busy")
                await trio.sleep_forever()
            finally:
                cancelled.set()

        async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
            await trio.sleep(0)
            closes.append(close_code)

    async with connect(App(routes=[WebSocketRoute("/ws", Slow)])) as ws:
        await ws.send_text("work")
        assert await ws.receive_text() == "busy"
        await ws.close(4002)
    assert cancelled.is_set()
    assert closes == [4002]


async def test_children_of_the_session_stop_with_it(connect: Connect) -> None:
    stopped = trio.Event()

    class Ticker(WebSocketEndpoint):
        async def on_connect(self, websocket: WebSocket) -> None:
            await websocket.accept()
            websocket.nursery.start_soon(self.tick, websocket)

        async def tick(self, websocket: WebSocket) -> None:
            try:
                for number in range(1_000_000):
                    await websocket.send_text(f"tick {number}")
                    await trio.sleep(0.001)
            finally:
                stopped.set()

    async with connect(App(routes=[WebSocketRoute("/ws", Ticker)])) as ws:
        assert await ws.receive_text() == "tick 0"
        assert await ws.receive_text() == "tick 1"
    assert stopped.is_set()


async def test_an_error_in_on_receive_reports_1011(connect: Connect) -> None:
    closes: list[int] = []

    class Broken(WebSocketEndpoint):
        async def on_receive(self, websocket: WebSocket, data: Any) -> None:
            raise ZeroDivisionError("oops")

        async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
            closes.append(close_code)

    app = App(routes=[WebSocketRoute("/ws", Broken)])
    with pytest.raises(ZeroDivisionError):
        async with connect(app) as ws:
            await ws.send_text("x")
            await ws.receive_text()
    async with connect(app, client={"raise_server_exceptions": False}) as ws:
        await ws.send_text("x")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 1011
    assert closes == [1011, 1011]
