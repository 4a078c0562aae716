"""Class-based endpoints: one method per HTTP verb, or one per WebSocket event."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

from toolkit.exceptions import HTTPException
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.routing import as_async_endpoint, serve_endpoint
from toolkit.status import WS_1000_NORMAL_CLOSURE, WS_1011_INTERNAL_ERROR
from toolkit.types import Message, Receive, Scope, Send
from toolkit.websockets import MalformedMessage, WebSocket, decode_json, run_session

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "QUERY")


class HTTPEndpoint:
    """Dispatch a request to the method named after its verb (``get``, ``post``...).

    HEAD falls back to ``get``; a verb with no method answers 405 with ``Allow``.
    The class itself is the ASGI app: ``Route("/", MyEndpoint)``.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        self.scope = scope
        self.receive = receive
        self.send = send
        defined = {method for method in HTTP_METHODS if getattr(self, method.lower(), None)}
        if "GET" in defined:
            defined.add("HEAD")  # served by ``get`` when there is no ``head``
        self._allowed_methods = [method for method in HTTP_METHODS if method in defined]

    def __await__(self) -> Generator[Any, None, None]:
        return self.dispatch().__await__()

    async def dispatch(self) -> None:
        request = Request(self.scope, receive=self.receive, send=self.send)
        name = (
            "get"
            if request.method == "HEAD" and not hasattr(self, "head")
            else request.method.lower()
        )
        # Only verbs are looked up: a method named "SEND" must not reach ``self.send``.
        allowed = request.method in self._allowed_methods
        handler: Any = getattr(self, name) if allowed else self.method_not_allowed
        await serve_endpoint(request, as_async_endpoint(handler))

    async def method_not_allowed(self, request: Request) -> Response:
        """405, through the app's exception handlers when inside an app."""
        headers = {"Allow": ", ".join(self._allowed_methods)}
        if "app" in self.scope:
            raise HTTPException(status_code=405, headers=headers)
        return PlainTextResponse("Method Not Allowed", status_code=405, headers=headers)


class WebSocketEndpoint:
    """A WebSocket session as three methods: ``on_connect``, ``on_receive``, ``on_disconnect``.

    Messages are decoded by ``encoding``: ``"text"``, ``"bytes"``, ``"json"`` (from either
    frame type), or ``None`` for whatever arrived. A message of the wrong kind closes the
    session with 1003. The session runs as ``run_session`` does (``websocket.nursery``,
    cancellation on disconnect); ``on_disconnect`` runs after it, with the peer's close code
    (1011 after an error), so it is not cancelled with the session.
    """

    encoding: Literal["text", "bytes", "json"] | None = None

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "websocket"
        self.scope = scope
        self.receive = receive
        self.send = send

    def __await__(self) -> Generator[Any, None, None]:
        return self.dispatch().__await__()

    async def dispatch(self) -> None:
        websocket = WebSocket(self.scope, receive=self.receive, send=self.send)
        close_code = WS_1011_INTERNAL_ERROR
        try:
            await run_session(websocket, self._session)
            close_code = websocket.close_code or WS_1000_NORMAL_CLOSURE
        except MalformedMessage as exc:  # the peer's fault, not the app's: no error
            close_code = exc.code
            await websocket.close(exc.code, exc.reason)
        finally:
            await self.on_disconnect(websocket, close_code)

    async def _session(self, websocket: WebSocket) -> None:
        await self.on_connect(websocket)
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            await self.on_receive(websocket, await self.decode(websocket, message))

    async def decode(self, websocket: WebSocket, message: Message) -> Any:
        """The message's data as ``encoding`` says; ``MalformedMessage`` (1003) if it cannot be."""
        text: str | None = message.get("text")
        data: bytes | None = message.get("bytes")
        if self.encoding == "text":
            if text is None:
                raise MalformedMessage("Expected text websocket messages, but got bytes")
            return text
        if self.encoding == "bytes":
            if data is None:
                raise MalformedMessage("Expected bytes websocket messages, but got text")
            return data
        if self.encoding == "json":
            return decode_json(message)
        assert self.encoding is None, f"Unsupported 'encoding' attribute {self.encoding}"
        return text if text is not None else data

    async def on_connect(self, websocket: WebSocket) -> None:
        """Called first; accepts the connection. Override to check, choose a subprotocol, deny."""
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        """Called with each decoded message."""

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        """Called once the session is over, with the close code."""
