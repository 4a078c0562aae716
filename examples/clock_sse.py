"""A clock over server-sent events: ``python -m toolkit serve examples.clock_sse:app``, then open
http://127.0.0.1:8000/.

``/clock`` sends the time every second as an event with an increasing ``id``. When the browser
reconnects (stop and restart the server), it sends the last id it saw as ``Last-Event-ID`` and
the count carries on from there. Closing the tab cancels the producer at once: its ``finally``
runs and the server logs it.
"""

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import trio

from toolkit.applications import App
from toolkit.requests import Request
from toolkit.responses import HTMLResponse
from toolkit.routing import Route
from toolkit.sse import EventSourceResponse, ServerSentEvent

logger = logging.getLogger("examples.clock_sse")

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>SSE clock</title></head>
<body>
  <h1 id="time">connecting...</h1>
  <p>tick <span id="tick">-</span></p>
  <script>
    const source = new EventSource("/clock");
    source.addEventListener("tick", (event) => {
      const data = JSON.parse(event.data);
      document.getElementById("time").textContent = data.time;
      document.getElementById("tick").textContent = event.lastEventId;
    });
    source.onerror = () => { document.getElementById("time").textContent = "reconnecting..."; };
  </script>
</body>
</html>
"""


async def homepage(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def clock(request: Request) -> EventSourceResponse:
    last_id = request.headers.get("last-event-id", "0")
    first = int(last_id) + 1 if last_id.isdecimal() else 1

    async def ticks() -> AsyncIterator[ServerSentEvent]:
        tick = first
        try:
            while True:
                now = datetime.now(UTC).strftime("%H:%M:%S UTC")
                yield ServerSentEvent({"time": now}, event="tick", id=str(tick))
                tick += 1
                await trio.sleep(1)
        finally:
            logger.info("clock client left after tick %d", tick - 1)

    return EventSourceResponse(ticks())


app = App(routes=[Route("/", homepage), Route("/clock", clock)])
