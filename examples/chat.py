"""Multi-room chat over a ``Broadcast`` hub: ``python -m toolkit serve examples.chat:app``, then
open http://127.0.0.1:8000/ in two tabs and pick a room.

Each session is a task tree (docs/websockets.md): the handler reads what the browser sends and
publishes it to the room; a child task in ``websocket.nursery`` forwards the room's messages to
the browser. Closing the tab cancels both at once. A browser too slow to keep up loses its
oldest messages, never slowing the room down (``on_overflow="drop_oldest"``).
"""

from toolkit.applications import App
from toolkit.broadcast import Broadcast, Subscriber
from toolkit.requests import Request
from toolkit.responses import HTMLResponse
from toolkit.routing import Route, WebSocketRoute
from toolkit.websockets import WebSocket

#: Longest accepted chat message, in characters; the app limits whole frames to 4 KiB.
MAX_TEXT = 1000

broadcast = Broadcast(buffer_size=100, on_overflow="drop_oldest")

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>toolkit chat</title></head>
<body>
  <form id="join">
    <input id="room" value="lobby" aria-label="room">
    <input id="name" value="guest" aria-label="name">
    <button>Join</button>
  </form>
  <ul id="messages"></ul>
  <form id="say" hidden>
    <input id="text" aria-label="message" autocomplete="off"><button>Send</button>
  </form>
  <script>
    let socket;
    const show = (line) => {
      const item = document.createElement("li");
      item.textContent = line;
      document.getElementById("messages").append(item);
    };
    document.getElementById("join").onsubmit = (event) => {
      event.preventDefault();
      if (socket) socket.close();
      const room = encodeURIComponent(document.getElementById("room").value);
      const name = encodeURIComponent(document.getElementById("name").value);
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/ws/${room}?name=${name}`);
      socket.onmessage = (message) => {
        const data = JSON.parse(message.data);
        show(`${data.name}: ${data.text}`);
      };
      socket.onclose = () => show("(disconnected)");
      document.getElementById("say").hidden = false;
    };
    document.getElementById("say").onsubmit = (event) => {
      event.preventDefault();
      const input = document.getElementById("text");
      socket.send(input.value);
      input.value = "";
    };
  </script>
</body>
</html>
"""


async def homepage(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def forward(websocket: WebSocket, subscriber: Subscriber) -> None:
    """Send the room's messages to this browser, until the session ends."""
    async for message in subscriber:
        await websocket.send_json(message)


async def chat(websocket: WebSocket) -> None:
    room = websocket.path_params["room"]
    name = websocket.query_params.get("name", "guest")[:40]
    channel = f"chat:{room}"
    await websocket.accept()
    async with broadcast.subscribe(channel) as subscriber:
        websocket.nursery.start_soon(forward, websocket, subscriber)
        await broadcast.publish(channel, {"name": "*", "text": f"{name} joined"})
        async for text in websocket.iter_text():
            await broadcast.publish(channel, {"name": name, "text": text[:MAX_TEXT]})
        # The browser left (iter_text ended): tell the room, within the disconnect grace.
        await broadcast.publish(channel, {"name": "*", "text": f"{name} left"})


app = App(
    routes=[Route("/", homepage), WebSocketRoute("/ws/{room}", chat)],
    websocket_max_message_size=4096,
)
