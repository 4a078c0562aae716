"""The seed's WebSocket echo: ``python -m toolkit serve examples.echo:app``, then connect to
ws://127.0.0.1:8000/ws (for instance ``python -m websockets ws://127.0.0.1:8000/ws``).

Every text message comes back as ``Received: <message>``.
"""

from typing import Any

from toolkit.applications import App
from toolkit.endpoints import WebSocketEndpoint
from toolkit.websockets import WebSocket


class Echo(WebSocketEndpoint):
    encoding = "text"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(f"Received: {data}")


app = App()
app.add_websocket_route("/ws", Echo)
