"""Server-sent events: ``EventSourceResponse`` streams ``ServerSentEvent``s to an ``EventSource``.

The events come from an async iterable (or a sync one, iterated in a worker thread) of
``ServerSentEvent``, ``str`` (the data) or ``dict``/``list`` (JSON data). While the producer is
quiet, a comment goes out every ``ping`` seconds so proxies keep the connection open. When the
client leaves, the producer is cancelled at once and its ``finally`` blocks run; neither the
producer nor the pinger outlives the response.

A reconnecting browser sends the last ``id`` it saw as ``Last-Event-ID``: read it in the handler
with ``request.headers.get("last-event-id")`` and resume from there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import aclosing
from typing import Any

import trio

from toolkit.background import BackgroundTask
from toolkit.concurrency import app_thread_limiter, iterate_in_thread
from toolkit.responses import Response
from toolkit.types import Receive, Scope, Send

__all__ = ["DEFAULT_PING_INTERVAL", "EventSourceResponse", "ServerSentEvent", "wait_for_disconnect"]

DEFAULT_PING_INTERVAL = 15.0

# The event stream format splits lines on CRLF, CR or LF, and on nothing else.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field(name: str, value: str) -> str:
    """One ``name: value`` line per line of ``value`` (an empty value is one empty line)."""
    return "".join(f"{name}: {line}\n" for line in _LINE_BREAK.split(value))


def _single_line(name: str, value: str) -> str:
    if _LINE_BREAK.search(value):
        raise ValueError(f"A server-sent event's {name} cannot contain a line break: {value!r}")
    return value


class ServerSentEvent:
    """One event: ``data`` (text, or a dict/list sent as JSON), and the optional ``event``
    type, ``id`` (what the client echoes back as ``Last-Event-ID``), ``retry`` (the client's
    reconnection delay in milliseconds) and ``comment`` (a line clients ignore)."""

    __slots__ = ("comment", "data", "event", "id", "retry")

    def __init__(
        self,
        data: Any = None,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        *,
        comment: str | None = None,
    ) -> None:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        elif isinstance(data, Mapping | list):
            data = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        elif data is not None and not isinstance(data, str):
            raise TypeError(f"Event data must be str, bytes, dict or list, not {type(data)!r}")
        self.data: str | None = data
        self.event = None if event is None else _single_line("event", event)
        if id is not None and "\x00" in _single_line("id", id):
            raise ValueError("A server-sent event's id cannot contain a NUL character")
        self.id = id
        if retry is not None and (not isinstance(retry, int) or retry < 0):
            raise ValueError(f"retry must be a non-negative number of milliseconds: {retry!r}")
        self.retry = retry
        self.comment = comment

    def encode(self) -> bytes:
        """The event in the ``text/event-stream`` format, blank line included, UTF-8."""
        text = "" if self.comment is None else _field("", self.comment)
        if self.id is not None:
            text += f"id: {self.id}\n"
        if self.event is not None:
            text += f"event: {self.event}\n"
        if self.retry is not None:
            text += f"retry: {self.retry}\n"
        if self.data is not None:
            text += _field("data", self.data)
        return (text + "\n").encode("utf-8")

    def __repr__(self) -> str:
        fields = ("data", "event", "id", "retry", "comment")
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in fields if getattr(self, name) is not None
        )
        return f"{type(self).__name__}({shown})"


def encode_event(item: ServerSentEvent | str | bytes | Mapping[str, Any] | list[Any]) -> bytes:
    """Encode what a producer yields: an event, or the data of one."""
    if isinstance(item, ServerSentEvent):
        return item.encode()
    return ServerSentEvent(item).encode()


async def wait_for_disconnect(scope: Scope, receive: Receive) -> None:
    """Return once the client of ``scope`` has gone away, discarding any unread request body.

    The one place a stream learns that its client left. It reads ``receive`` itself; where the
    request scope already watches for the disconnect, only this function needs to change.
    """
    while (await receive())["type"] != "http.disconnect":
        pass


EventItem = ServerSentEvent | str | bytes | Mapping[str, Any] | list[Any]
EventStream = AsyncIterable[EventItem] | Iterable[EventItem]


class EventSourceResponse(Response):
    """A ``text/event-stream`` response sending each item of ``content`` as an event.

    ``ping`` is the idle interval in seconds after which a ``: ping`` comment is sent (None
    turns pings off). ``Cache-Control: no-store`` and ``X-Accel-Buffering: no`` keep caches and
    proxies from holding events back.
    """

    media_type = "text/event-stream"
    ping_message = b": ping\n\n"

    def __init__(
        self,
        content: EventStream,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        *,
        ping: float | None = DEFAULT_PING_INTERVAL,
    ) -> None:
        if ping is not None and ping <= 0:
            raise ValueError("ping must be a positive number of seconds, or None")
        self._content = content
        self.status_code = status_code
        self.media_type = self.media_type if media_type is None else media_type
        self.background = background
        self.ping = ping
        self.init_headers(headers)
        self.headers.setdefault("cache-control", "no-store")
        self.headers.setdefault("x-accel-buffering", "no")

    def _iterate(self, scope: Scope) -> AsyncIterator[EventItem]:
        if isinstance(self._content, AsyncIterable):
            return aiter(self._content)
        return iterate_in_thread(self._content, limiter=app_thread_limiter(scope))

    async def _produce(self, scope: Scope, events: trio.MemorySendChannel[bytes]) -> None:
        """Encode the content's items into ``events``; the iterator is closed however it ends."""
        async with events:
            iterator = self._iterate(scope)
            if hasattr(iterator, "aclose"):
                async with aclosing(iterator):  # type: ignore[type-var]
                    async for item in iterator:
                        await events.send(encode_event(item))
            else:
                async for item in iterator:
                    await events.send(encode_event(item))

    async def _send_events(self, events: trio.MemoryReceiveChannel[bytes], send: Send) -> None:
        """Send each encoded event, or a ping after ``ping`` idle seconds, until the end."""
        idle_limit = math.inf if self.ping is None else self.ping
        while True:
            chunk = self.ping_message
            with trio.move_on_after(idle_limit):
                try:
                    chunk = await events.receive()
                except trio.EndOfChannel:
                    return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def send_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the events until the producer ends or the client leaves."""
        await self.send_start(scope, send)
        if scope.get("method") == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        client_gone = False

        async def cancel_on_disconnect(cancel_scope: trio.CancelScope) -> None:
            nonlocal client_gone
            await wait_for_disconnect(scope, receive)
            client_gone = True
            cancel_scope.cancel()

        send_channel, receive_channel = trio.open_memory_channel[bytes](0)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_on_disconnect, nursery.cancel_scope)
                nursery.start_soon(self._produce, scope, send_channel)
                async with receive_channel:
                    await self._send_events(receive_channel, send)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) != 1:
                raise
            sole_error = group.exceptions[0]
        else:
            if not client_gone:
                await send({"type": "http.response.body", "body": b""})
            return
        # Raised outside the handler, so the error keeps its own traceback and context.
        raise sole_error
