"""The request scope: what one HTTP request owns, and when each part ends.

``App`` opens one ``RequestScope`` per HTTP request (see docs/concurrency.md):

- a **cancel scope**, cancelled when the client disconnects before the
  response is complete (unless opted out) and when the request's deadline
  passes; entered only where something can be cancelled (``enters_now``):
  around the middleware stack, or at the matched route, or not at all;
- the **receiver** (``toolkit.receiver``): the only reader of the request;
- **``request.nursery``**: child tasks joined (or cancelled) before the
  request ends; a failing child fails the request like the handler would;
- an **exit stack** closed after the last byte is sent;
- the **background tasks** of the response, run after all of that, outside
  the cancel scope.

To keep the common request cheap, the task that watches for a disconnect is
only started once the request actually blocks (a request that never waits
cannot be cancelled anyway), and it shares one helper task with
``request.nursery``: the *companion*, started on first need.
"""

from __future__ import annotations

import contextvars
import logging
import math
import types
from collections.abc import Awaitable, Callable, Generator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from toolkit.companion import Companion, TaskNursery
from toolkit.receiver import BODY_TIMEOUT_REASON, RequestReceiver
from toolkit.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from toolkit.background import BackgroundTask

logger = logging.getLogger("toolkit")

T = TypeVar("T")

SCOPE_KEY = "toolkit.request_scope"

_EMPTY_CONTEXT = contextvars.Context()


class _Unset:
    """The value of a route option that was not given (``None`` means "no limit")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class RequestScope:
    """Owns one HTTP request's cancel scope, receiver, children, exit stack and background."""

    __slots__ = (
        "__weakref__",
        "_companion",
        "_exit_stack",
        "_headers",
        "_in_scope",
        "_send",
        "_sending",
        "_watching",
        "background",
        "background_context",
        "cancel_on_disconnect",
        "cancel_reason",
        "cancel_scope",
        "child_error",
        "deferred",
        "method",
        "path",
        "receiver",
        "response_complete",
        "response_started",
        "start_time",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        timeout: float | None,
        cancel_on_disconnect: bool,
        max_body_size: int | None,
        body_timeout: float | None,
    ) -> None:
        # Not the scope itself: the scope holds this object, and a cycle would leave
        # every request to the garbage collector.
        self.method: str = scope.get("method", "")
        self.path: str = scope.get("path", "")
        self._headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        self._send = send
        self.receiver = RequestReceiver(receive, self, max_body_size, body_timeout)
        self.cancel_scope = trio.CancelScope()
        self.start_time = math.nan
        if timeout is not None:
            self.start_time = trio.current_time()
            self.cancel_scope.deadline = self.start_time + timeout
        self.cancel_on_disconnect = cancel_on_disconnect
        self.cancel_reason: str | None = None
        # The failure of a request.nursery child, answered by the app after the scope.
        self.child_error: BaseException | None = None
        self.response_started = False
        self.response_complete = False
        self._sending = False
        self.background: list[BackgroundTask] | None = None
        self.background_context = _EMPTY_CONTEXT
        self._companion: Companion | None = None
        self._watching = False
        self._exit_stack: AsyncExitStack | None = None
        self._in_scope = False
        # The app left entering the cancel scope to the router (see run()).
        self.deferred = False

    # -- sending

    async def send(self, message: Message) -> None:
        """The app's ``send``: records how far the response has got."""
        message_type = message["type"]
        if message_type == "http.response.body":
            if message.get("more_body", False):
                # A stream can go on sending to a client that has left (the server
                # drops the bytes silently): blocking here must start the watcher.
                await self._send(message)
                return
            # Mark before sending: the server answers the last byte with an
            # immediate http.disconnect, which must not cancel anything.
            self.response_complete = True
        elif message_type == "http.response.start":
            self.response_started = True
        self._sending = True
        try:
            await self._send(message)
        finally:
            self._sending = False

    # -- options a route or mount applies once matched

    def apply_route_options(
        self, timeout: Any, cancel_on_disconnect: Any, max_body_size: Any
    ) -> None:
        """Override the app's settings with a route's (``UNSET`` keeps the app's)."""
        if timeout is not UNSET:
            self.deadline = math.inf if timeout is None else self._started() + timeout
        if cancel_on_disconnect is not UNSET:
            if cancel_on_disconnect and not self.cancel_on_disconnect and self._in_scope:
                # The app runs without watching, maybe past its first wait; this route watches.
                self.watch()
            self.cancel_on_disconnect = cancel_on_disconnect
        if max_body_size is not UNSET:
            self.receiver.max_body_size = max_body_size
            if self.receiver.received_bytes == 0:
                content_length = _header(self._headers, b"content-length")
                self.receiver.check_declared_length(content_length)

    def _started(self) -> float:
        if math.isnan(self.start_time):
            # Without an app-level timeout the start was not read; now is close enough.
            self.start_time = trio.current_time()
        return self.start_time

    @property
    def deadline(self) -> float:
        """The absolute trio time at which the request is cancelled (``inf``: never)."""
        return self.cancel_scope.deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self.cancel_scope.deadline = value
        if self._companion is not None:
            self._companion.cancel_scope.deadline = value

    # -- cancellation

    def client_disconnected(self) -> None:
        """The receiver saw the client leave: cancel, unless the response is already complete."""
        if self.response_complete:
            return
        method, path = self.method, self.path
        if self.cancel_on_disconnect:
            logger.debug("Client disconnected; cancelling %s %s", method, path)
            self.cancel("client disconnected")
        else:
            logger.debug("Client disconnected during %s %s; handler continues", method, path)

    def cancel(self, reason: str) -> None:
        """Cancel the request: the handler, its response and its children."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.cancel_scope.cancel()
        if self._companion is not None:
            self._companion.cancel()

    @property
    def in_cancel_scope(self) -> bool:
        """Whether the app is running inside the request's cancel scope (see ``run``)."""
        return self._in_scope

    @property
    def timed_out(self) -> int | None:
        """408 if the body took too long, 504 if the request's deadline passed, else None."""
        if not self.cancel_scope.cancelled_caught:
            return None
        if self.cancel_reason is None:
            return 504
        if self.cancel_reason == BODY_TIMEOUT_REASON:
            return 408
        return None

    # -- running the app

    def enters_now(self, *, defer: bool) -> bool:
        """Whether the app must run inside the cancel scope from the start (``run``).

        A trio cancel scope costs about as much as the rest of a plain
        request, so it is only entered where something could be cancelled:

        - with no deadline and no cancel-on-disconnect, never (a route that
          sets a deadline or turns watching on enters it: ``run_route``);
        - with ``defer`` (the app's stack is toolkit's own down to the
          router), at the matched route, unless that route's endpoint cannot
          wait at all (``Route.never_waits``): then only if its response
          streams or it started children (``routing.serve_endpoint``).
        """
        if not self.cancel_on_disconnect and self.cancel_scope.deadline == math.inf:
            return False
        if defer:
            self.deferred = True
            return False
        return True

    async def run(self, app_call: Awaitable[None]) -> None:
        """Run ``app_call`` inside the cancel scope; start the watcher once it blocks."""
        self.deferred = False
        self._in_scope = True
        with self.cancel_scope:
            await _run_until_blocked(app_call, self._on_block)

    async def run_route(
        self,
        options: tuple[Any, Any, Any],
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Run a matched route that overrides the app's settings (``Route(timeout=...)``...)."""
        self.apply_route_options(*options)  # may refuse the request (413) before it starts
        if self._in_scope or not self.enters_now(defer=False):
            await app(scope, receive, send)
        else:
            await self.run(app(scope, receive, send))

    def _on_block(self) -> bool:
        """The app is about to wait: start watching for a disconnect, unless it only waits
        for the server (sending the response, or reading the body it asked for).

        Returns whether to stop being asked.
        """
        if self._sending or self.receiver.pulling:
            return self.response_complete
        if self.cancel_on_disconnect and not self.receiver.disconnected:
            self.watch()
        return True

    def companion(self) -> Companion:
        """The task hosting ``request.nursery`` and the watcher, started on first need."""
        if self._companion is None:
            self._companion = Companion(self, f"toolkit request companion {self.path}")
            self._companion.cancel_scope.deadline = self.cancel_scope.deadline
            if self.cancel_scope.cancel_called:
                self._companion.cancel()
        return self._companion

    def watch(self) -> None:
        """Start the disconnect watcher (once, and only while the request lasts)."""
        if not self._watching:
            self._watching = True
            self.companion().start_service(self._watch)

    async def _watch(self) -> None:
        try:
            await self.receiver.watch()
        except Exception:
            # The server's receive broke: nothing more can be learnt from it.
            logger.debug("Disconnect watcher stopped", exc_info=True)

    def child_failed(self, error: BaseException) -> None:
        """A ``request.nursery`` child failed: as a nursery does, cancel the rest (the handler
        too); the app answers the error once the request scope has closed."""
        if self.child_error is None:
            self.child_error = error
        self.cancel("a request.nursery child failed")

    async def wait_disconnected(self) -> None:
        """Return once the client has gone away."""
        await self.receiver.watch()

    @property
    def nursery(self) -> TaskNursery:
        return self.companion().nursery

    @property
    def exit_stack(self) -> AsyncExitStack:
        if self._exit_stack is None:
            self._exit_stack = AsyncExitStack()
        return self._exit_stack

    def defer(self, background: BackgroundTask) -> None:
        """Run ``background`` once the request scope has closed."""
        if self.background is None:
            self.background = [background]
            # Middleware may reset its context variables on the way out: keep them.
            self.background_context = contextvars.copy_context()
        else:
            self.background.append(background)

    def restore_background_context(self) -> None:
        """Give the current task the context variables seen where the tasks were deferred."""
        for var, value in self.background_context.items():
            var.set(value)

    def cancel_children(self) -> None:
        """Cancel ``request.nursery``'s children: the endpoint failed."""
        if self._companion is not None:
            self._companion.cancel()

    @property
    def has_children(self) -> bool:
        """Whether ``request.nursery`` (or the watcher) was ever started."""
        return self._companion is not None

    async def join_children(self) -> None:
        """Wait for ``request.nursery``'s children (a failure is kept in ``child_error``)."""
        if self._companion is not None:
            await self._companion.join()

    @property
    def needs_closing(self) -> bool:
        """Whether ``close()`` has anything to do."""
        return self._companion is not None or self._exit_stack is not None

    async def close(self) -> None:
        """After the response: join children, then close the exit stack."""
        try:
            await self.join_children()
        finally:
            if self._exit_stack is not None:
                await self._exit_stack.aclose()


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return str(value.decode("latin-1"))
    return None


# ----------------------------------------------------------------------------- the first block


@types.coroutine
def _run_until_blocked(
    awaitable: Awaitable[T], on_block: Callable[[], bool]
) -> Generator[Any, Any, T]:
    """Run ``awaitable`` in the current task exactly as ``await`` would, but call
    ``on_block()`` each time it yields to trio's scheduler, until that returns True.

    This is ``yield from`` written out by hand: every value trio sends or
    throws in is passed on unchanged, so cancellation and tracebacks behave as usual.
    """
    coro = awaitable.__await__()
    asking = True
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            trap = coro.send(value) if error is None else coro.throw(error)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if asking:
            asking = not on_block()
        try:
            value, error = (yield trap), None
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            value, error = None, exc


class ResponseTracker:
    """Records whether a response has started, for a layer used outside an ``App``."""

    __slots__ = ("_send", "response_started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.response_started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)
