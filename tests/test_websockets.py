"""toolkit.websockets through both test clients: the API, the session's task scope, limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

import toolkit.websockets
from tests.apps import echo
from tests.clients import Connect
from tests.garbage import toolkit_garbage
from toolkit.applications import App
from toolkit.exceptions import HTTPException, WebSocketException
from toolkit.responses import PlainTextResponse
from toolkit.routing import Mount, WebSocketRoute
from toolkit.testclient import AsyncTestClient, TestClient, WebSocketDenialResponse
from toolkit.types import Message, Receive, Scope, Send
from toolkit.websockets import (
    MalformedMessage,
    WebSocket,
    WebSocketClose,
    WebSocketDisconnect,
    WebSocketDisconnected,
    WebSocketState,
    run_session,
)

# ----------------------------------------------------------------------------- apps


def ws_app(endpoint: Callable[[WebSocket], Any], path: str = "/ws", **options: Any) -> App:
    return App(routes=[WebSocketRoute(path, endpoint)], **options)


# ----------------------------------------------------------------------------- messages


async def test_text_and_bytes_echo(connect: Connect) -> None:
    async with connect(ws_app(echo)) as ws:
        await ws.send_text("héllo")
        assert await ws.receive_text() == "héllo"
        await ws.send_bytes(b"\x00\xff")
        assert await ws.receive_bytes() == b"\x00\xff"


async def test_json_modes_both_ways(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"got": data}, mode="text")
        data = await websocket.receive_json(mode="binary")
        await websocket.send_json({"got": data}, mode="binary")
        await websocket.close()

    async with connect(ws_app(app)) as ws:
        await ws.send_json({"é": [1, 2]})
        message = await ws.receive()
        assert message["text"] == '{"got":{"é":[1,2]}}'  # compact, not ASCII-escaped
        await ws.send_json([3], mode="binary")
        message = await ws.receive()
        assert message["bytes"] == b'{"got":[3]}'


async def test_client_receive_json_in_both_modes(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"a": 1})
        await websocket.send_json({"b": 2}, mode="binary")
        await websocket.close()

    async with connect(ws_app(app)) as ws:
        assert await ws.receive_json() == {"a": 1}
        assert await ws.receive_json(mode="binary") == {"b": 2}


async def test_json_mode_must_be_text_or_binary() -> None:
    raised: list[BaseException] = []

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        for call in (websocket.send_json(1, mode="xml"), websocket.receive_json(mode="xml")):  # type: ignore[arg-type]
            try:
                await call
            except RuntimeError as error:
                raised.append(error)
        await websocket.close()

    async with AsyncTestClient(ws_app(app)) as client, client.websocket_connect("/ws") as ws:
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_text()
    assert len(raised) == 2


async def test_iterators_end_when_the_peer_disconnects(connect: Connect) -> None:
    seen: list[Any] = []
    ended = trio.Event()

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        kind = websocket.query_params["kind"]
        iterator = {
            "text": websocket.iter_text,
            "bytes": websocket.iter_bytes,
            "json": websocket.iter_json,
        }[kind]()
        async for item in iterator:
            seen.append(item)
            await websocket.send_text("ok")
        ended.set()

    for kind, sent in (("text", "a"), ("bytes", b"b"), ("json", {"c": 3})):
        ended = trio.Event()
        async with connect(ws_app(app), f"/ws?kind={kind}") as ws:
            if isinstance(sent, str):
                await ws.send_text(sent)
            elif isinstance(sent, bytes):
                await ws.send_bytes(sent)
            else:
                await ws.send_json(sent)
            assert await ws.receive_text() == "ok"
        assert ended.is_set()  # leaving waited for the app task
    assert seen == ["a", b"b", {"c": 3}]


async def test_wrong_frame_type_and_bad_json_close_with_1003(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        kind = websocket.query_params["want"]
        if kind == "text":
            await websocket.receive_text()
        elif kind == "bytes":
            await websocket.receive_bytes()
        else:
            await websocket.receive_json()

    cases: list[tuple[str, Message, str]] = [
        (
            "text",
            {"type": "websocket.receive", "bytes": b"x"},
            "Expected a text message, got a binary one",
        ),
        (
            "bytes",
            {"type": "websocket.receive", "text": "x"},
            "Expected a binary message, got a text one",
        ),
        ("json", {"type": "websocket.receive", "text": "{nope"}, "Malformed JSON"),
        ("json", {"type": "websocket.receive", "bytes": b"\xff"}, "Malformed JSON"),
    ]
    for want, message, reason in cases:
        async with connect(ws_app(app), f"/ws?want={want}") as ws:
            await ws.send(message)
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive_text()
        assert (closed.value.code, closed.value.reason) == (1003, reason)


def test_malformed_message_is_a_websocket_exception_and_a_value_error() -> None:
    error = MalformedMessage("Malformed JSON")
    assert isinstance(error, WebSocketException)
    assert isinstance(error, ValueError)
    assert (error.code, error.reason) == (1003, "Malformed JSON")


# ----------------------------------------------------------------------------- handshake


async def test_subprotocol_negotiation_and_accept_headers(connect: Connect) -> None:
    offered: list[list[str]] = []

    async def app(websocket: WebSocket) -> None:
        offered.append(websocket.scope["subprotocols"])
        await websocket.accept(subprotocol="chat.v2", headers=[(b"x-room", b"lobby")])
        await websocket.close()

    async with connect(ws_app(app), subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.accepted_subprotocol == "chat.v2"
        assert (b"x-room", b"lobby") in ws.extra_headers
    assert offered == [["chat.v1", "chat.v2"]]


async def test_accepting_a_subprotocol_the_client_did_not_offer_is_an_app_error(
    connect: Connect,
) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="other")

    with pytest.raises(RuntimeError, match="Invalid subprotocol 'other'"):
        async with connect(ws_app(app), subprotocols=["chat"]):
            pass
    # As a server would: an app failing before accept is refused with a 500.
    with pytest.raises(WebSocketDenialResponse) as denied:
        async with connect(ws_app(app), client={"raise_server_exceptions": False}):
            pass
    assert denied.value.status_code == 500


async def test_accept_headers_may_not_set_the_subprotocol(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept(headers=[(b"Sec-WebSocket-Protocol", b"x")])

    with pytest.raises(RuntimeError, match="use the subprotocol argument"):
        async with connect(ws_app(app)):
            pass


async def test_scope_mirrors_hypercorns(connect: Connect) -> None:
    scopes: list[Scope] = []

    async def app(websocket: WebSocket) -> None:
        scopes.append(dict(websocket.scope))
        await websocket.close()

    with pytest.raises(WebSocketDisconnect):
        async with connect(ws_app(app), "/ws?a=1", subprotocols=["p"]):
            pass
    scope = scopes[0]
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert scope["scheme"] == "ws"
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["subprotocols"] == ["p"]
    assert (scope["path"], scope["query_string"]) == ("/ws", b"a=1")
    headers = dict(scope["headers"])
    assert headers[b"upgrade"] == b"websocket"
    assert headers[b"sec-websocket-version"] == b"13"
    assert "method" not in scope


async def test_connection_properties(connect: Connect) -> None:
    seen: dict[str, Any] = {}

    async def app(websocket: WebSocket) -> None:
        seen["url"] = str(websocket.url)
        seen["header"] = websocket.headers["x-token"]
        seen["query"] = websocket.query_params["q"]
        seen["room"] = websocket.path_params["room"]
        seen["cookie"] = websocket.cookies["flavour"]
        seen["client"] = websocket.client
        websocket.state.visits = 1
        seen["state"] = websocket.state.visits
        seen["url_for"] = str(websocket.url_for("room", room="kitchen"))
        await websocket.accept()
        await websocket.close()

    app = App(routes=[WebSocketRoute("/rooms/{room}", app, name="room")])
    headers = {"x-token": "t", "cookie": "flavour=mint"}
    async with connect(app, "/rooms/hall?q=1", headers=headers) as ws:
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_text()
    assert seen == {
        "url": "ws://testserver/rooms/hall?q=1",
        "header": "t",
        "query": "1",
        "room": "hall",
        "cookie": "mint",
        "client": ("testclient", 50000),
        "state": 1,
        "url_for": "ws://testserver/rooms/kitchen",
    }


async def test_states_follow_the_messages(connect: Connect) -> None:
    states: list[tuple[str, str]] = []

    def record(websocket: WebSocket) -> None:
        states.append((websocket.client_state.name, websocket.application_state.name))

    async def app(websocket: WebSocket) -> None:
        record(websocket)
        await websocket.accept()
        record(websocket)
        await websocket.receive_text()
        await websocket.close()
        record(websocket)
        answer = await websocket.receive()  # the peer's answer to our close
        assert answer["type"] == "websocket.disconnect"
        record(websocket)

    async with connect(ws_app(app)) as ws:
        await ws.send_text("x")
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_text()
    assert states == [
        ("CONNECTING", "CONNECTING"),
        ("CONNECTED", "CONNECTED"),
        ("CONNECTED", "DISCONNECTED"),
        ("DISCONNECTED", "DISCONNECTED"),
    ]


# ----------------------------------------------------------------------------- closing


async def test_app_close_code_and_reason_reach_the_client(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(code=4001, reason="bye")

    async with connect(ws_app(app)) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
        assert (closed.value.code, closed.value.reason) == (4001, "bye")
        # The close is the last word: asking again says the same.
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_bytes()


async def test_client_close_code_and_reason_reach_the_app(connect: Connect) -> None:
    closes: list[tuple[int, str]] = []
    done = trio.Event()

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect as disconnect:
            closes.append((disconnect.code, disconnect.reason))
            done.set()

    async with connect(ws_app(app)) as ws:
        await ws.close(4002, "later")
    assert done.is_set()
    assert closes == [(4002, "later")]


async def test_close_before_accept_refuses_with_its_code(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.close(code=4003, reason="not you")

    with pytest.raises(WebSocketDisconnect) as refused:
        async with connect(ws_app(app)):
            pass
    assert (refused.value.code, refused.value.reason) == (4003, "not you")


async def test_returning_closes_the_socket_with_1000(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()

    async with connect(ws_app(app)) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 1000


async def test_returning_without_accept_refuses_the_handshake(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        pass

    with pytest.raises(WebSocketDisconnect) as refused:
        async with connect(ws_app(app)):
            pass
    assert refused.value.code == 1000


async def test_close_is_idempotent_and_sends_after_close_raise(connect: Connect) -> None:
    outcomes: list[str] = []

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close(4000)
        await websocket.close()
        try:
            await websocket.send_text("late")
        except WebSocketDisconnected as error:
            outcomes.append(str(error))
        try:
            await websocket.send({"type": "websocket.close"})
        except WebSocketDisconnected:
            outcomes.append("raw close refused")

    async with connect(ws_app(app)) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 4000
    assert outcomes == [
        'Cannot call "send" once a close message has been sent.',
        "raw close refused",
    ]


async def test_websocket_close_app_and_unmatched_paths(connect: Connect) -> None:
    app = App(routes=[Mount("/closed", app=WebSocketClose(4004, "gone"))])
    # A mount matches below its path.
    with pytest.raises(WebSocketDisconnect) as refused:
        async with connect(app, "/closed/room"):
            pass
    assert (refused.value.code, refused.value.reason) == (4004, "gone")
    with pytest.raises(WebSocketDisconnect) as unmatched:
        async with connect(app, "/nowhere"):
            pass
    assert unmatched.value.code == 1000


async def test_receive_needs_accept_and_stops_after_the_disconnect() -> None:
    errors: list[str] = []

    async def app(websocket: WebSocket) -> None:
        try:
            await websocket.receive_text()
        except WebSocketDisconnected as error:
            errors.append(str(error))
        await websocket.accept()
        with pytest.raises(WebSocketDisconnect):
            await websocket.receive_text()
        try:
            await websocket.receive()
        except WebSocketDisconnected as error:
            errors.append(str(error))

    async with AsyncTestClient(ws_app(app)) as client:
        async with client.websocket_connect("/ws") as ws:
            await ws.close()
        await client.wait_idle()
    assert errors == [
        'WebSocket is not connected. Need to call "accept" first.',
        'Cannot call "receive" once a disconnect message has been received.',
    ]


# ----------------------------------------------------------------------------- denial and errors


async def test_denial_response_carries_status_headers_and_body(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        response = PlainTextResponse("no entry", status_code=401, headers={"x-why": "token"})
        await websocket.send_denial_response(response)

    with pytest.raises(WebSocketDenialResponse) as denied:
        async with connect(ws_app(app)):
            pass
    response = denied.value
    assert response.status_code == 401
    assert response.headers["x-why"] == "token"
    assert response.text == "no entry"
    assert isinstance(response, WebSocketDisconnect)
    assert response.code == 1006


async def test_http_exception_before_accept_is_a_denial(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        raise HTTPException(403, detail="members only", headers={"x-join": "/signup"})

    with pytest.raises(WebSocketDenialResponse) as denied:
        async with connect(ws_app(app)):
            pass
    assert denied.value.status_code == 403
    assert denied.value.text == "members only"
    assert denied.value.headers["x-join"] == "/signup"


async def test_denial_after_accept_is_refused() -> None:
    raised: list[str] = []

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.send_denial_response(PlainTextResponse("late"))
        except RuntimeError as error:
            raised.append(str(error))
        await websocket.close()

    async with AsyncTestClient(ws_app(app)) as client, client.websocket_connect("/ws") as ws:
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_text()
    assert raised == ["A denial response can only be sent before accept()"]


async def test_denial_without_the_extension_closes_before_accept() -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "websocket", "headers": [], "extensions": {}}
    websocket = WebSocket(scope, receive, send)
    await websocket.send_denial_response(PlainTextResponse("no", status_code=401))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]


async def test_websocket_exception_closes_with_its_code_and_reason(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        if websocket.query_params.get("accept"):
            await websocket.accept()
        raise WebSocketException(4005, "policy")

    async with connect(ws_app(app), "/ws?accept=1") as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (4005, "policy")
    with pytest.raises(WebSocketDisconnect) as refused:
        async with connect(ws_app(app)):
            pass
    assert (refused.value.code, refused.value.reason) == (4005, "policy")


async def test_registered_handlers_see_the_sessions_websocket(connect: Connect) -> None:
    states: list[WebSocketState] = []

    class Kicked(Exception):
        pass

    async def on_kicked(websocket: WebSocket, exc: Exception) -> None:
        states.append(websocket.application_state)
        await websocket.close(4010, "kicked")

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        raise Kicked

    app_ = ws_app(app, exception_handlers={Kicked: on_kicked})
    async with connect(app_) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 4010
    assert states == [WebSocketState.CONNECTED]


async def test_unhandled_error_raises_in_the_test_or_closes_with_1011(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        async with connect(ws_app(app)) as ws:
            await ws.send_text("go")
            await ws.receive_text()
    async with connect(ws_app(app), client={"raise_server_exceptions": False}) as ws:
        await ws.send_text("go")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 1011


async def test_unhandled_error_is_left_to_the_server_to_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The error reaches the server, which logs it once (tests/integration); toolkit stays quiet.
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        raise ValueError("boom")

    client = AsyncTestClient(ws_app(app), raise_server_exceptions=False)
    async with client, client.websocket_connect("/ws") as ws:
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_text()
    assert [r for r in caplog.records if r.name.startswith("toolkit")] == []


# ----------------------------------------------------------------------------- limits


async def test_oversized_messages_close_with_1009(connect: Connect) -> None:
    reasons: list[int] = []

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect as disconnect:
            reasons.append(disconnect.code)

    app_ = ws_app(app, websocket_max_message_size=8)
    async with connect(app_) as ws:
        await ws.send_text("12345678")  # at the limit: fine
        assert await ws.receive_text() == "12345678"
        await ws.send_text("ééééé")  # 5 characters, 10 bytes
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (1009, "Message too big")
    async with connect(app_) as ws:
        await ws.send_bytes(b"x" * 9)
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 1009
    assert reasons == [1009, 1009]


async def test_message_size_limit_can_be_lifted(connect: Connect) -> None:
    big = "x" * (2 * 1024 * 1024)
    async with connect(ws_app(echo)) as ws:
        await ws.send_text(big)
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 1009  # the 1 MiB default
    async with connect(ws_app(echo, websocket_max_message_size=None)) as ws:
        await ws.send_text(big)
        assert await ws.receive_text() == big


# ----------------------------------------------------------------------------- the session scope


@pytest.fixture
def quick_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short watchdog tick: a busy handler's disconnect is noticed in milliseconds."""
    monkeypatch.setattr(toolkit.websockets, "WATCH_DELAY", 0.01)


@pytest.mark.usefixtures("quick_watch")
async def test_peer_disconnect_cancels_a_busy_handler_and_its_children(connect: Connect) -> None:
    cancelled: list[str] = []
    all_cancelled = trio.Event()

    async def child(name: str) -> None:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(name)
            if len(cancelled) == 3:
                all_cancelled.set()

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(child, "reader")
        websocket.nursery.start_soon(child, "heartbeat")
        try:
            await websocket.send_text("busy")
            await trio.sleep_forever()  # busy elsewhere: never sees the disconnect itself
        finally:
            cancelled.append("handler")
            if len(cancelled) == 3:
                all_cancelled.set()

    async with connect(ws_app(app)) as ws:
        assert await ws.receive_text() == "busy"
        await ws.send_text("ignored")
    assert all_cancelled.is_set()
    assert sorted(cancelled) == ["handler", "heartbeat", "reader"]


async def test_a_receiving_handler_gets_the_disconnect_and_may_clean_up(connect: Connect) -> None:
    cleaned = trio.Event()
    child_cancelled = trio.Event()

    async def child() -> None:
        try:
            await trio.sleep_forever()
        finally:
            child_cancelled.set()

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(child)
        try:
            await websocket.receive_text()
        except WebSocketDisconnect:
            await trio.sleep(0.01)  # awaiting in cleanup works: not cancelled
            with pytest.raises(WebSocketDisconnect):
                await websocket.send_text("too late")  # the peer is gone: a clear error
            cleaned.set()

    async with connect(ws_app(app)) as ws:
        await ws.close(1001)
    assert cleaned.is_set()
    assert child_cancelled.is_set()


async def test_cleanup_after_a_disconnect_has_a_deadline() -> None:
    outcome: list[str] = []

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                outcome.append("cancelled after the grace period")
                raise

    app_ = ws_app(app, websocket_disconnect_grace=0.05)
    async with AsyncTestClient(app_) as client:
        with trio.fail_after(2):
            async with client.websocket_connect("/ws"):
                pass
            await client.wait_idle()
    assert outcome == ["cancelled after the grace period"]


async def test_returning_cancels_the_children_then_closes(connect: Connect) -> None:
    child_finally = trio.Event()

    async def child() -> None:
        try:
            await trio.sleep_forever()
        finally:
            child_finally.set()

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(child)
        await websocket.receive_text()

    async with connect(ws_app(app)) as ws:
        await ws.send_text("stop")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
        assert closed.value.code == 1000
        assert child_finally.is_set()


async def test_a_failing_child_cancels_the_handler_and_closes_with_1011(connect: Connect) -> None:
    handler_cancelled = trio.Event()

    async def child() -> None:
        await trio.sleep(0.01)
        raise KeyError("child failed")

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(child)
        try:
            await trio.sleep_forever()
        finally:
            handler_cancelled.set()

    with pytest.raises(KeyError, match="child failed"):  # unwrapped from its group
        async with connect(ws_app(app)) as ws:
            await ws.receive_text()
    assert handler_cancelled.is_set()
    async with connect(ws_app(app), client={"raise_server_exceptions": False}) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 1011


class SpawnCounter(trio.abc.Instrument):
    """Counts the tasks spawned whose name starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.spawned = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned += task.name.startswith(self.prefix)


async def companions_spawned(app: App) -> int:
    """How many WebSocket companion tasks one echoed session of ``app`` spawns."""
    counter = SpawnCounter("toolkit WebSocket companion")
    trio.lowlevel.add_instrument(counter)
    try:
        async with AsyncTestClient(app) as client, client.websocket_connect("/ws") as ws:
            await ws.send_text("a")
            await ws.receive_text()
    finally:
        trio.lowlevel.remove_instrument(counter)
    return counter.spawned


async def test_a_session_needs_a_companion_task_only_for_children() -> None:
    async def with_children(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(trio.sleep, 0)
        websocket.nursery.start_soon(trio.sleep, 0)
        await websocket.send_text(await websocket.receive_text())

    assert await companions_spawned(ws_app(echo)) == 0  # no child, no pump: no extra task
    assert await companions_spawned(ws_app(with_children)) == 1  # started once, on first need


async def test_a_handler_and_a_child_failing_together_are_both_reported() -> None:
    child_failed = trio.Event()

    async def child() -> None:
        try:
            raise KeyError("child failed")
        finally:
            child_failed.set()

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(child)
        with trio.CancelScope(shield=True):  # the handler does not see the cancellation
            await child_failed.wait()
            await trio.testing.wait_all_tasks_blocked()
        raise ValueError("handler failed")

    async with AsyncTestClient(ws_app(app)) as client:
        with pytest.raises(BaseExceptionGroup) as raised:
            async with client.websocket_connect("/ws") as ws:
                await ws.receive_text()
    errors = raised.value.exceptions
    assert sorted(type(error).__name__ for error in errors) == ["KeyError", "ValueError"]


async def test_a_websocket_exception_in_a_child_closes_with_its_code(connect: Connect) -> None:
    async def child() -> None:
        raise WebSocketException(4008, "from a child")

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(child)
        await trio.sleep_forever()

    async with connect(ws_app(app)) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (4008, "from a child")


async def test_disconnect_escaping_the_handler_is_not_an_error(connect: Connect) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:  # no try: WebSocketDisconnect propagates, as Starlette code often lets it
            await websocket.send_text(await websocket.receive_text())

    async with connect(ws_app(app)) as ws:
        await ws.send_text("a")
        assert await ws.receive_text() == "a"
    # Leaving raised nothing: the app's end was clean.


async def test_concurrent_sends_from_children_never_overlap(connect: Connect) -> None:
    in_flight = 0
    overlaps = 0

    class Guard:
        """ASGI middleware counting sends that overlap."""

        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def one_at_a_time(message: Message) -> None:
                nonlocal in_flight, overlaps
                in_flight += 1
                overlaps += in_flight > 1
                try:
                    await trio.sleep(0)  # a server's write yields: another sender could slip in
                    await send(message)
                finally:
                    in_flight -= 1

            await self.app(scope, receive, one_at_a_time)

    async def sender(websocket: WebSocket, name: str) -> None:
        for number in range(30):
            await websocket.send_json({"from": name, "n": number})

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        async with trio.open_nursery() as nursery:
            for name in "abc":
                nursery.start_soon(sender, websocket, name)
        for name in "xyz":
            websocket.nursery.start_soon(sender, websocket, name)
        await websocket.receive_text()

    app_ = App(routes=[WebSocketRoute("/ws", Guard(websocket_session_of(app)))])
    async with connect(app_) as ws:
        received = [await ws.receive_json() for _ in range(180)]
        await ws.send_text("done")
    counts: dict[str, list[int]] = {}
    for message in received:
        counts.setdefault(message["from"], []).append(message["n"])
    assert counts == {name: list(range(30)) for name in "abcxyz"}
    assert overlaps == 0


def websocket_session_of(handler: Callable[[WebSocket], Any]) -> Any:
    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        await run_session(WebSocket(scope, receive, send), handler)

    return asgi


async def test_nursery_exists_only_inside_a_session() -> None:
    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        pass

    websocket = WebSocket({"type": "websocket", "headers": []}, receive, send)
    with pytest.raises(RuntimeError, match="only while a session runs"):
        websocket.nursery  # noqa: B018


async def test_a_raw_websocket_outside_a_session_talks_to_the_server_directly() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    async with AsyncTestClient(app) as client, client.websocket_connect("/") as ws:
        await ws.send_text("direct")
        assert await ws.receive_text() == "direct"


async def test_websocket_routes_inside_mounts_and_url_for() -> None:
    urls: list[str] = []

    async def app(websocket: WebSocket) -> None:
        urls.append(str(websocket.url_for("api:feed", topic="news")))
        await websocket.accept()
        await websocket.send_text(websocket.path_params["topic"])
        await websocket.close()

    app_ = App(
        routes=[
            Mount("/api", routes=[WebSocketRoute("/feed/{topic}", app, name="feed")], name="api")
        ]
    )
    async with AsyncTestClient(app_) as client, client.websocket_connect("/api/feed/sport") as ws:
        assert await ws.receive_text() == "sport"
    assert urls == ["ws://testserver/api/feed/news"]
    assert str(app_.url_path_for("api:feed", topic="x").make_absolute_url("https://h")) == (
        "wss://h/api/feed/x"
    )


# ----------------------------------------------------------------------------- the test clients


async def test_client_cannot_send_after_its_close() -> None:
    async with AsyncTestClient(ws_app(echo)) as client, client.websocket_connect("/ws") as ws:
        await ws.close()
        with pytest.raises(RuntimeError, match="closed"):
            await ws.send_text("x")


async def test_client_messages_after_the_app_closed_are_dropped() -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.close()

    async with AsyncTestClient(ws_app(app)) as client, client.websocket_connect("/ws") as ws:
        with pytest.raises(WebSocketDisconnect):
            await ws.receive_text()
        await ws.send_text("nobody listens")  # lost, as on a network, without an error


async def test_app_that_ignores_the_close_is_cancelled_on_leaving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import toolkit.testing.transport as transport

    monkeypatch.setattr(transport, "WEBSOCKET_CLOSE_TIMEOUT", 0.05)
    cancelled = trio.Event()

    async def stubborn(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    with trio.fail_after(2):
        client = AsyncTestClient(stubborn, lifespan=False)
        async with client, client.websocket_connect("/"):
            pass
    assert cancelled.is_set()


def test_sync_client_websocket_without_with_block() -> None:
    client = TestClient(ws_app(echo))
    with client.websocket_connect("/ws") as ws:
        ws.send_text("no lifespan needed")
        assert ws.receive_text() == "no lifespan needed"


def test_sync_session_must_be_entered() -> None:
    session = TestClient(ws_app(echo)).websocket_connect("/ws")
    with pytest.raises(RuntimeError, match="context manager"):
        session.send_text("x")


async def test_async_client_must_be_open() -> None:
    client = AsyncTestClient(ws_app(echo))
    with pytest.raises(RuntimeError, match="Open the client first"):
        client.websocket_connect("/ws")


async def test_client_headers_and_cookies_are_sent() -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def app(websocket: WebSocket) -> None:
        seen.append((websocket.headers.get("user-agent"), websocket.cookies.get("sid")))
        await websocket.close()

    async with AsyncTestClient(ws_app(app), cookies={"sid": "42"}) as client:
        with pytest.raises(WebSocketDisconnect):
            async with client.websocket_connect("/ws"):
                pass
    assert seen == [("testclient", "42")]


@pytest.mark.usefixtures("quick_watch")
async def test_children_may_receive_while_the_handler_is_busy(connect: Connect) -> None:
    got: list[str] = []

    async def reader(websocket: WebSocket) -> None:
        async for text in websocket.iter_text():
            got.append(text)
            await websocket.send_text(f"child got {text}")

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(reader, websocket)
        await trio.sleep_forever()

    async with connect(ws_app(app)) as ws:
        for number in range(10):
            await ws.send_text(str(number))
        assert [await ws.receive_text() for _ in range(10)] == [
            f"child got {number}" for number in range(10)
        ]
    assert got == [str(number) for number in range(10)]


@pytest.mark.usefixtures("quick_watch")
async def test_messages_reach_the_handler_and_a_child_once_each(connect: Connect) -> None:
    by_reader: dict[str, list[int]] = {"handler": [], "child": []}

    async def read(websocket: WebSocket, name: str) -> None:
        async for data in websocket.iter_json():
            by_reader[name].append(data)
            await websocket.send_json(data)

    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        websocket.nursery.start_soon(read, websocket, "child")
        await read(websocket, "handler")

    async with connect(ws_app(app)) as ws:
        for number in range(40):
            await ws.send_json(number)
        echoed = sorted([await ws.receive_json() for _ in range(40)])
    assert echoed == list(range(40))
    assert sorted(by_reader["handler"] + by_reader["child"]) == list(range(40))
    for numbers in by_reader.values():
        assert numbers == sorted(numbers)  # each reader sees its share in order


@pytest.mark.usefixtures("quick_watch")
async def test_a_handler_back_from_being_busy_gets_every_message_in_order(
    connect: Connect,
) -> None:
    async def app(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            text = await websocket.receive_text()
            if text == "nap":
                await trio.sleep(0.1)  # ten ticks: the pump reads meanwhile, then hands back
            await websocket.send_text(text)

    async with connect(ws_app(app)) as ws:
        sent = ["nap", *(str(number) for number in range(30)), "nap", "last"]
        for text in sent:
            await ws.send_text(text)
        assert [await ws.receive_text() for _ in sent] == sent


async def test_a_session_leaves_no_reference_cycles_behind() -> None:
    """Cycles would leave every session's objects to the garbage collector (slow, served).

    The server holds the scope for the connection's life, as hypercorn's stream does.
    """
    app = ws_app(echo)

    async def one_session() -> None:
        incoming: list[Message] = [
            {"type": "websocket.connect"},
            {"type": "websocket.receive", "text": "hi"},
            {"type": "websocket.disconnect", "code": 1000},
        ]
        sent: list[Message] = []

        async def receive() -> Message:
            return incoming.pop(0)

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "websocket", "path": "/ws", "root_path": "", "headers": []}
        scope["server_stream"] = (scope, receive, send)  # what the server keeps
        await app(scope, receive, send)
        assert [message["type"] for message in sent] == ["websocket.accept", "websocket.send"]

    await one_session()  # builds the middleware stack once
    assert await toolkit_garbage(one_session) == []
