"""Small app pieces that several test modules share: raw ASGI helpers and a WebSocket echo."""

from __future__ import annotations

from typing import Any

from toolkit.types import ASGIApp, Message, Receive, Scope, Send
from toolkit.websockets import WebSocket


async def respond(send: Send, body: bytes = b"", headers: list[Any] | None = None) -> None:
    """Send a whole 200 response with ``body`` (and ``headers``), as a raw ASGI app."""
    await send({"type": "http.response.start", "status": 200, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> list[Message]:
    """Receive ``http.request`` messages until the one without ``more_body``; return them all."""
    messages = [await receive()]
    while messages[-1].get("more_body"):
        messages.append(await receive())
    return messages


class RecordResponseEnd:
    """ASGI middleware: records "response sent" once the last body message has been sent."""

    def __init__(self, app: ASGIApp, events: list[str]) -> None:
        self.app = app
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def recording_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.events.append("response sent")

        await self.app(scope, receive, recording_send)


async def echo(websocket: WebSocket) -> None:
    """A WebSocket handler that sends each text or binary message back until the peer leaves."""
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message["bytes"])
