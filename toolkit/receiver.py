"""The receiving side of one HTTP request: the only caller of the server's ``receive()``.

Every read of the request (the body, a disconnect) goes through one
``RequestReceiver``. That is what lets toolkit notice a client that leaves
without polling: once a request blocks, a watcher task asks the receiver for
news, and the receiver turns the server's ``http.disconnect`` into a
callback, exactly once, whoever happened to read it.

Rules it keeps (see docs/concurrency.md and hypercorn's behaviour):

- one raw ``receive()`` at a time, by whichever side needs news first;
- the watcher reads the body ahead only up to ``READ_AHEAD`` bytes, so a
  disconnect queued behind an unread body is still seen, but an unbounded
  body is never pulled into memory to find it;
- after a disconnect, ``receive()`` answers ``http.disconnect`` every time
  instead of blocking forever;
- the body is limited to ``max_body_size`` bytes (413) and must arrive
  within ``body_timeout`` seconds of the first read (408).
"""

from __future__ import annotations

import math
import weakref
from collections import deque
from typing import TYPE_CHECKING

import trio

from toolkit.exceptions import HTTPException
from toolkit.types import Message, Receive

if TYPE_CHECKING:
    from toolkit.request_scope import RequestScope

#: How many body bytes the disconnect watcher may buffer ahead of the handler.
READ_AHEAD = 1024 * 1024

DISCONNECT: Message = {"type": "http.disconnect"}

BODY_TIMEOUT_DETAIL = "The request body arrived too slowly."
#: The request scope's ``cancel_reason`` when the body took longer than ``body_timeout``.
BODY_TIMEOUT_REASON = "body timeout"


class RequestReceiver:
    """Wraps the server's ``receive`` for one request; call it as the app's ``receive``."""

    __slots__ = (
        "_body_deadline",
        "_buffer",
        "_buffered_bytes",
        "_news",
        "_owner",
        "_receive",
        "body_complete",
        "body_timeout",
        "disconnected",
        "max_body_size",
        "pulling",
        "received_bytes",
        "too_large",
    )

    def __init__(
        self,
        receive: Receive,
        owner: RequestScope,
        max_body_size: int | None,
        body_timeout: float | None,
    ) -> None:
        self._receive = receive
        # Weakly: the owner holds this receiver, and a cycle would leave every
        # request to the garbage collector.
        self._owner = weakref.ref(owner)
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout
        self._buffer: deque[Message] = deque()
        self._buffered_bytes = 0
        self.pulling = False
        self._news: trio.lowlevel.ParkingLot | None = None
        self._body_deadline = math.inf
        self.body_complete = False
        self.disconnected = False
        self.received_bytes = 0
        self.too_large = False

    @property
    def owner(self) -> RequestScope:
        owner = self._owner()
        assert owner is not None, "the request scope outlives its receiver's use"
        return owner

    async def __call__(self) -> Message:
        """The next message for the app: a body chunk, or ``http.disconnect``."""
        if self._buffer:
            return self._take()
        if self.too_large:
            raise HTTPException(413, f"The request body is larger than {self.max_body_size} bytes.")
        if self.disconnected:
            return DISCONNECT
        if self.body_complete:
            await self.watch()
            return DISCONNECT
        if self.body_timeout is None:
            await self._wait_for_body()
        else:
            if self._body_deadline == math.inf:
                self._body_deadline = trio.current_time() + self.body_timeout
            if self.owner.in_cancel_scope:
                await self._wait_for_body_under_the_request_deadline()
            else:
                with trio.move_on_at(self._body_deadline):
                    await self._wait_for_body()
                if not self._buffer and not self.disconnected and not self.too_large:
                    raise HTTPException(408, BODY_TIMEOUT_DETAIL)
        if self._buffer:
            return self._take()
        if self.too_large:
            raise HTTPException(413, f"The request body is larger than {self.max_body_size} bytes.")
        return DISCONNECT

    async def _wait_for_body_under_the_request_deadline(self) -> None:
        """Wait for the body with the request's own cancel scope as the timer.

        Cheaper than a cancel scope per read: the request's deadline is moved
        up to the body's while waiting. When it fires, the request is cancelled
        and the app answers 408 (``RequestScope.timed_out``).
        """
        cancel_scope = self.owner.cancel_scope
        request_deadline = cancel_scope.deadline
        if self._body_deadline >= request_deadline:
            await self._wait_for_body()
            return
        cancel_scope.deadline = self._body_deadline
        try:
            await self._wait_for_body()
        except trio.Cancelled:
            if trio.current_time() >= self._body_deadline:
                self.owner.cancel_reason = self.owner.cancel_reason or BODY_TIMEOUT_REASON
            raise
        finally:
            cancel_scope.deadline = request_deadline

    async def _wait_for_body(self) -> None:
        while not self._buffer and not self.disconnected and not self.too_large:
            if self.pulling:
                await self._park()
            else:
                await self._pull()

    async def _park(self) -> None:
        """Wait until the other side has read something or made room."""
        if self._news is None:
            self._news = trio.lowlevel.ParkingLot()
        await self._news.park()

    def _take(self) -> Message:
        message = self._buffer.popleft()
        self._buffered_bytes -= len(message.get("body", b""))
        if self._news:
            # The watcher may be waiting for room in its read-ahead budget.
            self._news.unpark_all()
        return message

    async def _pull(self) -> None:
        """One raw ``receive()``: the message goes to the buffer, or marks the disconnect."""
        self.pulling = True
        try:
            message = await self._receive()
        finally:
            self.pulling = False
            if self._news:
                self._news.unpark_all()
        message_type = message["type"]
        if message_type == "http.request":
            if self.body_complete:
                # Nothing may follow the last body message but a disconnect;
                # ignore a confused server (with a checkpoint, so it cannot spin).
                await trio.lowlevel.checkpoint()
                return
            body = message.get("body", b"")
            self.received_bytes += len(body)
            if not message.get("more_body", False):
                self.body_complete = True
            limit = self.max_body_size
            if limit is not None and self.received_bytes > limit:
                # Nothing over the limit is kept; every later read answers 413.
                self.too_large = True
                return
            self._buffered_bytes += len(body)
            self._buffer.append(message)
        elif message_type == "http.disconnect":
            self._mark_disconnected()

    def _mark_disconnected(self) -> None:
        if self.disconnected:
            return
        self.disconnected = True
        self.owner.client_disconnected()

    def check_declared_length(self, content_length: str | None) -> None:
        """413 at once for a declared ``Content-Length`` over the limit, before any body is read."""
        limit = self.max_body_size
        if limit is None or content_length is None:
            return
        try:
            declared = int(content_length)
        except ValueError:
            raise HTTPException(400, "Invalid Content-Length header.") from None
        if declared > limit:
            raise HTTPException(413, f"The request body is larger than {limit} bytes.")

    async def watch(self) -> None:
        """Return once the client has gone away, reading the body ahead (boundedly) meanwhile.

        The disconnect watcher runs this; so does anyone waiting for the
        disconnect. Whoever is not reading parks until the reader has news.
        """
        while not self.disconnected:
            can_read_ahead = not self.too_large and (
                self.body_complete or self._buffered_bytes < READ_AHEAD
            )
            if self.pulling or not can_read_ahead:
                await self._park()
            else:
                await self._pull()
