"""toolkit.sse: event encoding, EventSourceResponse streaming, pings, disconnects, Last-Event-ID."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio.testing

from toolkit.applications import App
from toolkit.requests import Request
from toolkit.routing import Route
from toolkit.sse import EventSourceResponse, ServerSentEvent, wait_for_disconnect
from toolkit.testclient import AsyncTestClient
from toolkit.types import Message

# ----------------------------------------------------------------------------- encoding


@pytest.mark.parametrize(
    ("event", "encoded"),
    [
        (ServerSentEvent("hello"), b"data: hello\n\n"),
        (ServerSentEvent("a\nb\r\nc\rd"), b"data: a\ndata: b\ndata: c\ndata: d\n\n"),
        (ServerSentEvent("ends with newline\n"), b"data: ends with newline\ndata: \n\n"),
        (ServerSentEvent(""), b"data: \n\n"),
        (ServerSentEvent(" leading space"), b"data:  leading space\n\n"),
        (ServerSentEvent("tab\tand\u2028kept"), "data: tab\tand\u2028kept\n\n".encode()),
        (ServerSentEvent({"b": [1, "é"]}), 'data: {"b":[1,"é"]}\n\n'.encode()),
        (ServerSentEvent([1, 2]), b"data: [1,2]\n\n"),
        (ServerSentEvent(b"bytes"), b"data: bytes\n\n"),
        (
            ServerSentEvent("x", event="update", id="42", retry=5000),
            b"id: 42\nevent: update\nretry: 5000\ndata: x\n\n",
        ),
        (ServerSentEvent(id="7"), b"id: 7\n\n"),
        (ServerSentEvent(comment="one\ntwo"), b": one\n: two\n\n"),
    ],
)
def test_encode(event: ServerSentEvent, encoded: bytes) -> None:
    assert event.encode() == encoded


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"data": "x", "event": "a\nb"}, ValueError),
        ({"data": "x", "id": "1\r2"}, ValueError),
        ({"data": "x", "id": "1\x002"}, ValueError),
        ({"data": "x", "retry": -1}, ValueError),
        ({"data": "x", "retry": 1.5}, ValueError),
        ({"data": 3}, TypeError),
        ({"data": object()}, TypeError),
    ],
)
def test_invalid_events(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ServerSentEvent(**kwargs)


def test_repr() -> None:
    assert repr(ServerSentEvent("x", id="1")) == "ServerSentEvent(data='x', id='1')"


def test_ping_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventSourceResponse([], ping=0)


# ----------------------------------------------------------------------------- streaming


def app_streaming(make_events: Callable[[Request], Any], **options: Any) -> App:
    async def stream(request: Request) -> EventSourceResponse:
        return EventSourceResponse(make_events(request), **options)

    return App(routes=[Route("/events", stream, methods=["GET", "HEAD"])])


async def test_streams_events_strings_and_dicts() -> None:
    async def events(request: Request) -> AsyncIterator[Any]:
        yield "first"
        yield {"n": 2}
        yield ServerSentEvent("third", event="done", id="3")

    async with AsyncTestClient(app_streaming(events)) as http:
        response = await http.get("/events")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-length" not in response.headers
    assert response.text == 'data: first\n\ndata: {"n":2}\n\nid: 3\nevent: done\ndata: third\n\n'


async def test_events_from_a_sync_iterable() -> None:
    async with AsyncTestClient(app_streaming(lambda request: ["a", "b"])) as http:
        response = await http.get("/events")
    assert response.text == "data: a\n\ndata: b\n\n"


async def test_events_arrive_as_they_are_produced() -> None:
    release = trio.Event()

    async def events(request: Request) -> AsyncIterator[str]:
        yield "now"
        await release.wait()
        yield "later"

    async with (
        AsyncTestClient(app_streaming(events)) as http,
        http.stream("GET", "/events") as response,
    ):
        chunks = response.aiter_text()
        assert await anext(chunks) == "data: now\n\n"
        release.set()
        assert await anext(chunks) == "data: later\n\n"


async def test_pings_while_idle(autojump_clock: trio.testing.MockClock) -> None:
    async def events(request: Request) -> AsyncIterator[str]:
        yield "a"
        await trio.sleep(10)
        yield "b"

    async with AsyncTestClient(app_streaming(events, ping=3)) as http:
        response = await http.get("/events")
    assert response.text == "data: a\n\n" + ": ping\n\n" * 3 + "data: b\n\n"
    async with AsyncTestClient(app_streaming(events, ping=None)) as http:
        response = await http.get("/events")
    assert response.text == "data: a\n\ndata: b\n\n"


async def ticks(cleaned_up: trio.Event) -> AsyncIterator[str]:
    """Endless "tick" events; sets ``cleaned_up`` once the generator is closed."""
    try:
        while True:
            yield "tick"
            await trio.sleep(0.01)
    finally:
        cleaned_up.set()


async def test_client_leaving_cancels_the_producer_promptly() -> None:
    cleaned_up = trio.Event()
    async with AsyncTestClient(app_streaming(lambda request: ticks(cleaned_up))) as http:
        async with http.stream("GET", "/events") as response:
            chunks = response.aiter_text()
            assert await anext(chunks) == "data: tick\n\n"
        with trio.fail_after(1):
            await cleaned_up.wait()
        await http.wait_idle()


async def test_producer_error_propagates() -> None:
    async def events(request: Request) -> AsyncIterator[str]:
        yield "ok"
        raise LookupError("producer failed")

    async with AsyncTestClient(app_streaming(events)) as http:
        with pytest.raises(LookupError, match="producer failed"):
            await http.get("/events")


async def test_head_does_not_start_the_producer() -> None:
    started: list[bool] = []

    async def events(request: Request) -> AsyncIterator[str]:
        started.append(True)
        yield "x"

    async with AsyncTestClient(app_streaming(events)) as http:
        response = await http.head("/events")
    assert response.status_code == 200 and response.content == b""
    assert started == []


async def test_last_event_id_resumes_the_stream() -> None:
    async def events(request: Request) -> AsyncIterator[ServerSentEvent]:
        start = int(request.headers.get("last-event-id", "0")) + 1
        for number in range(start, 4):
            yield ServerSentEvent(f"event {number}", id=str(number))

    async with AsyncTestClient(app_streaming(events)) as http:
        fresh = await http.get("/events")
        resumed = await http.get("/events", headers={"last-event-id": "2"})
    assert fresh.text.count("data:") == 3
    assert resumed.text == "id: 3\ndata: event 3\n\n"


async def test_wait_for_disconnect_skips_body_messages() -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": b"ignored", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    await wait_for_disconnect({"type": "http"}, receive)
    assert messages == []


async def test_response_alone_stops_on_disconnect() -> None:
    # No app and no request scope around it: the response itself notices the client leaving.
    first_sent, cleaned_up = trio.Event(), trio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        await first_sent.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("body"):
            first_sent.set()

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with trio.fail_after(1):
        await EventSourceResponse(ticks(cleaned_up))(scope, receive, send)
    assert cleaned_up.is_set()
    assert sent[1]["body"] == b"data: tick\n\n"
    # Nothing is sent to a client that has gone.
    assert all(message.get("more_body") for message in sent[1:])


async def test_example_clock_resumes_after_last_event_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from examples.clock_sse import app

    async with AsyncTestClient(app) as http:
        page = await http.get("/")
        assert 'new EventSource("/clock")' in page.text
        headers = {"last-event-id": "41"}
        async with http.stream("GET", "/clock", headers=headers) as response:
            lines = response.aiter_lines()
            assert await anext(lines) == "id: 42"
            assert await anext(lines) == "event: tick"
            assert (await anext(lines)).startswith('data: {"time":')
            assert await anext(lines) == ""
            assert await anext(lines) == "id: 43"
