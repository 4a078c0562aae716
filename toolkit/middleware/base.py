"""``BaseHTTPMiddleware``: Starlette's ``dispatch(request, call_next)`` middleware, in one task.

Starlette runs the downstream app in a second task and passes its messages
through a memory stream. That costs a task and a stream per request, hides
context variables and disconnects from one side or the other, and makes
background tasks and exceptions race with the response. Here the downstream
app is a coroutine driven by hand, in the request's own task:

- ``call_next`` runs it until it sends ``http.response.start`` and returns a
  response whose body, when sent (or read through ``body_iterator``), resumes
  it message by message, so a streamed body streams through unbuffered;
- whenever it waits for something, the trio trap it yields is passed up to
  trio unchanged, so cancellation, deadlines and context variables behave
  exactly as if the app had been awaited directly;
- after the last body message has been sent it is resumed to the end, so
  whatever the app does after its response (background tasks) runs once, after
  the response; a response ``dispatch`` drops is closed instead (the
  ``ResponseDiscarded`` exception is raised at its pending ``send``);
- an exception in the app comes out of ``call_next`` (or out of the body being
  sent) once; an exception raised while the app is paused at a send (in
  ``dispatch``, or by the server's ``send``) is raised inside the app at that
  send, as a pure ASGI middleware's ``send`` would raise it, so that the app's
  cancel scopes and nurseries unwind in order.

The price: the downstream app must send its response from the request's own
task (every toolkit response does). An app that sends from a child task gets a
``RuntimeError``; put such an app behind a pure ASGI middleware instead.
"""

from __future__ import annotations

import types
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from typing import Any, cast

import trio

from toolkit.request_scope import SCOPE_KEY, RequestScope
from toolkit.requests import Request
from toolkit.responses import Response
from toolkit.types import ASGIApp, Message, Receive, Scope, Send

RequestResponseEndpoint = Callable[[Request], Awaitable[Response]]
DispatchFunction = Callable[[Request, RequestResponseEndpoint], Awaitable[Response]]

__all__ = [
    "BaseHTTPMiddleware",
    "DispatchFunction",
    "RequestResponseEndpoint",
    "ResponseDiscarded",
]


class ResponseDiscarded(BaseException):
    """Raised inside the downstream app, at its pending ``send``, when ``dispatch`` dropped its
    response: its cleanup code runs, its background tasks do not.

    A ``BaseException``, so that ``except Exception`` in a handler does not swallow it.
    """


class BaseHTTPMiddleware:
    """Subclass it and write ``dispatch(request, call_next)``, or pass ``dispatch=``.

    ``call_next(request)`` runs the rest of the app and returns its response
    as soon as the status and headers are known; ``dispatch`` may change them,
    read the body through ``response.body_iterator``, or return another
    response. The request body read in ``dispatch`` is replayed to the app.
    WebSocket and lifespan scopes pass straight through.
    """

    def __init__(self, app: ASGIApp, dispatch: DispatchFunction | None = None) -> None:
        self.app = app
        self.dispatch_func = self.dispatch if dispatch is None else dispatch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        recorder = _RecordingReceive(receive)
        request = Request(scope, recorder, send)
        downstream: _Downstream | None = None
        outer_scope = _innermost_cancel_scope()

        async def call_next(request: Request) -> Response:
            nonlocal downstream
            if downstream is not None:
                raise RuntimeError("call_next() can only be called once per request")
            app_receive = _ReplayingReceive(receive, recorder.messages) if recorder else receive
            downstream = _Downstream(self.app, scope, app_receive, send)
            dispatch_scope = _innermost_cancel_scope()
            response = await downstream.start_response()
            if (
                dispatch_scope is not outer_scope
                and _innermost_cancel_scope() is not dispatch_scope
            ):
                error = RuntimeError(_MISNESTED)
                await downstream.throw(error)
                raise error
            return response

        response: Response | None = None
        try:
            response = await self.dispatch_func(request, call_next)
            request_scope: RequestScope | None = scope.get(SCOPE_KEY)
            if request_scope is None:
                await response(scope, receive, send)
            else:
                # As the router does: the background tasks run after the request scope closes.
                await response.send_response(scope, receive, send)
            if downstream is not None:
                await downstream.finish()
            if request_scope is not None and response.background is not None:
                request_scope.defer(response.background)
        except BaseException as exc:
            if downstream is None or downstream.finished:
                raise
            # The app is paused at a send, inside whatever it has open (cancel scopes,
            # nurseries): raise the error there, as a pure ASGI middleware's send would,
            # so that the app unwinds in order. If that send was its own response's, what
            # it sends next still goes out.
            sending_its_response = response is not None and response is downstream.response
            await downstream.throw(exc, forward=send if sending_its_response else None)
            # The app dealt with the error: its own cancel scope caught its own cancellation.
            if response is None:
                await trio.lowlevel.checkpoint_if_cancelled()
                raise RuntimeError(
                    "dispatch() was interrupted before returning a response"
                ) from exc
        finally:
            if downstream is not None:
                # The response and its app refer to each other: part them, so the request's
                # objects are freed at once rather than by the garbage collector.
                downstream.response = None

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Override: answer ``request``, usually by changing what ``await call_next(request)``
        returns."""
        raise NotImplementedError()


_MISNESTED = (
    "dispatch() awaited call_next() inside a cancel scope or nursery, and the app keeps one "
    "of its own open across the start of its response: trio cannot interleave the two in one "
    "task. Put the timeout in the app (a route's timeout=) or write a pure ASGI middleware."
)


def _innermost_cancel_scope() -> object:
    """Which cancel scope (or nursery) the current task is innermost in.

    Read from trio's private task state; if that ever moves, ``None``, and the
    misnesting check it serves simply stays quiet.
    """
    return getattr(trio.lowlevel.current_task(), "_cancel_status", None)


class _RecordingReceive:
    """The ``receive`` of dispatch's request: keeps what it reads, to replay to the app."""

    __slots__ = ("_receive", "messages")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.messages: deque[Message] = deque()

    async def __call__(self) -> Message:
        message = await self._receive()
        self.messages.append(message)
        return message

    def __bool__(self) -> bool:
        return bool(self.messages)


class _ReplayingReceive:
    """The app's ``receive`` once dispatch read some of the body: that part first, then the rest."""

    __slots__ = ("_receive", "_replay")

    def __init__(self, receive: Receive, replay: deque[Message]) -> None:
        self._receive = receive
        self._replay = replay

    async def __call__(self) -> Message:
        if self._replay:
            return self._replay.popleft()
        return await self._receive()


class _Downstream:
    """The downstream app's coroutine, paused at each message it sends until it is wanted."""

    __slots__ = (
        "_coro",
        "_message",
        "_send",
        "_task",
        "complete",
        "finished",
        "response",
        "trailers",
    )

    def __init__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        self._task = trio.lowlevel.current_task()
        self._send = send
        self._message: Message | None = None
        # An ASGI app is an async function: calling it makes the coroutine to drive.
        handover = cast(Send, self._handover)
        self._coro = cast(Coroutine[Any, Any, None], app(scope, receive, handover))
        self.response: _DownstreamResponse | None = None
        self.trailers = False
        self.complete = False  # the last message of the response has been handed over
        self.finished = False  # the coroutine has returned or raised

    async def start_response(self) -> Response:
        """Run the app up to ``http.response.start``; the response it starts."""
        while True:
            message = await self._drive()
            if message is None:
                raise RuntimeError("No response returned.")
            if message["type"] == "http.response.start":
                break
            # Anything sent ahead of the start (early hints, test-client debug info) goes out now.
            await self._send(message)
        self.trailers = bool(message.get("trailers", False))
        self.response = _DownstreamResponse(self, message)
        return self.response

    async def next_message(self) -> Message:
        """The next message of the response body (or trailers); the last one sets ``complete``."""
        message = await self._drive()
        if message is None:
            raise RuntimeError("The app returned before completing its response.")
        message_type = message["type"]
        if message_type == "http.response.body":
            if not message.get("more_body", False) and not self.trailers:
                self.complete = True
        elif message_type == "http.response.trailers":
            if not message.get("more_trailers", False):
                self.complete = True
        elif message_type == "http.response.pathsend":
            self.complete = True
        return message

    async def finish(self) -> None:
        """Let the app run to its end (after a complete response) or close it (a dropped one)."""
        if self.finished:
            return
        if not self.complete:
            try:
                await self.throw(ResponseDiscarded())
            except BaseException as exc:
                rest = _without_discarded(exc)
                if rest is not None:
                    raise rest from None
            return
        # Messages after the last one are not part of any response: nothing can take them.
        while await self._drive() is not None:
            pass

    async def throw(self, error: BaseException, forward: Send | None = None) -> None:
        """Raise ``error`` at the app's pending ``send``; run it until it returns or raises.

        What it sends meanwhile goes to ``forward`` (dropped without one); an error
        there is raised at that send in turn.
        """
        message = await self._drive(error)
        while message is not None:
            if forward is None:
                message = await self._drive()
                continue
            try:
                await forward(message)
            except BaseException as exc:
                message = await self._drive(exc)
            else:
                message = await self._drive()

    @types.coroutine
    def _handover(self, message: Message) -> Generator[Any, Any, None]:
        """The app's ``send``: pass ``message`` up to the driver; it resumes us once it is sent."""
        if trio.lowlevel.current_task() is not self._task:
            raise RuntimeError(
                "BaseHTTPMiddleware runs the app in the request's task, but the app sent "
                f"{message.get('type')!r} from another task; use a pure ASGI middleware here."
            )
        self._message = message
        yield self

    @types.coroutine
    def _drive(self, error: BaseException | None = None) -> Generator[Any, Any, Message | None]:
        """Resume the app until it sends a message (returned) or ends (``None``).

        Every other value it yields is a trio trap: passed up to trio, and trio's
        answer passed back down, exactly as ``await`` would.
        """
        if self.finished:
            return None
        coro = self._coro
        value: Any = None
        while True:
            try:
                if error is None:
                    yielded = coro.send(value)
                else:
                    yielded = coro.throw(error)
                    error = None
            except StopIteration:
                self.finished = True
                return None
            except BaseException:
                self.finished = True
                raise
            if yielded is self:
                message: Message | None = self._message
                self._message = None
                return message
            try:
                value = yield yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                error = exc


def _without_discarded(error: BaseException) -> BaseException | None:
    """``error`` less the ``ResponseDiscarded`` we raised (which may come back in a group)."""
    if isinstance(error, ResponseDiscarded):
        return None
    if isinstance(error, BaseExceptionGroup):
        return error.split(ResponseDiscarded)[1]
    return error


class _DownstreamResponse(Response):
    """What ``call_next`` returns: the app's status and headers, its body still to come.

    ``status_code``, ``headers`` and ``background`` may be changed before it is sent.
    """

    def __init__(self, downstream: _Downstream, start: Message) -> None:
        self._downstream = downstream
        self._start = start
        self.status_code = start["status"]
        self.raw_headers = list(start.get("headers", ()))
        self.background = None
        self.body_iterator: AsyncIterator[bytes] = _BodyIterator(downstream)

    async def send_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = dict(self._start)
        start["status"] = self.status_code
        start["headers"] = self.raw_headers
        await send(start)
        downstream = self._downstream
        while not downstream.complete:
            await send(await downstream.next_message())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.send_response(scope, receive, send)
        await self._downstream.finish()
        if self.background is not None:
            await self.background()


class _BodyIterator:
    """``response.body_iterator``: the body chunks, each pulled from the app on demand."""

    __slots__ = ("_downstream",)

    def __init__(self, downstream: _Downstream) -> None:
        self._downstream = downstream

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        downstream = self._downstream
        while not downstream.complete:
            message = await downstream.next_message()
            body: bytes = message.get("body", b"")
            if body:
                return body
        raise StopAsyncIteration
