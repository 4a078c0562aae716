"""Server-sent events over real sockets: consumed by httpx, closed from the client side."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import trio

from toolkit.applications import App
from toolkit.requests import Request
from toolkit.routing import Route
from toolkit.sse import EventSourceResponse, ServerSentEvent
from toolkit.testing.live import live_server


async def test_client_closing_the_stream_runs_the_producers_finally_within_a_second() -> None:
    cleaned_up = trio.Event()
    last_event_ids: list[str | None] = []

    async def clock(request: Request) -> EventSourceResponse:
        last_event_ids.append(request.headers.get("last-event-id"))

        async def ticks() -> AsyncIterator[ServerSentEvent]:
            try:
                number = 0
                while True:
                    number += 1
                    yield ServerSentEvent({"tick": number}, event="tick", id=str(number))
                    await trio.sleep(0.02)
            finally:
                cleaned_up.set()

        return EventSourceResponse(ticks(), ping=0.5)

    app = App(routes=[Route("/clock", clock)])
    with trio.fail_after(10):
        async with (
            live_server(app) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            headers = {"last-event-id": "41", "accept": "text/event-stream"}
            async with client.stream("GET", "/clock", headers=headers) as response:
                assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
                lines = []
                async for line in response.aiter_lines():
                    lines.append(line)
                    if len(lines) == 8:
                        break
            closed_at = trio.current_time()
            with trio.fail_after(1):
                await cleaned_up.wait()
            assert trio.current_time() - closed_at < 1
            # The server keeps serving after the client left.
            async with client.stream("GET", "/clock") as again:
                assert again.status_code == 200
    assert lines == [
        "id: 1",
        "event: tick",
        'data: {"tick":1}',
        "",
        "id: 2",
        "event: tick",
        'data: {"tick":2}',
        "",
    ]
    assert last_event_ids[0] == "41"
