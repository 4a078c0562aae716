"""Run an ASGI app's lifespan protocol around a block of code, as a server does around serving."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import trio

from toolkit.testing.transport import HeldNursery, unwrap_exception_group
from toolkit.types import ASGIApp, Message


class LifespanFailure(Exception):
    """The app answered ``lifespan.startup.failed`` or ``.shutdown.failed``, or did not answer."""


class LifespanManager:
    """Send ``lifespan.startup`` on entry and ``lifespan.shutdown`` on exit; wait for the answers.

    ``state`` is the dict the app fills in at startup (``scope["state"]``); give the same dict to
    the transport so each request sees a copy. An app that raises before ever calling ``receive``
    does not support lifespan: the block runs without it, as hypercorn does. A startup or shutdown
    failure raises the app's own exception if it raised one, else :class:`LifespanFailure`. If the
    block raises, shutdown is skipped and the app cancelled, as trio cancels a failed nursery.
    """

    def __init__(
        self,
        app: ASGIApp,
        state: dict[str, Any] | None = None,
        *,
        startup_timeout: float | None = 60.0,
        shutdown_timeout: float | None = 60.0,
    ) -> None:
        self.app = app
        self.state: dict[str, Any] = {} if state is None else state
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.supported = True
        self._to_app, self._app_inbox = trio.open_memory_channel[Message](1)
        self._from_app, self._replies = trio.open_memory_channel[Message](1)
        self._awaiting: str | None = None  # the phase whose answer the app may send now
        self._received = False
        self._error: BaseException | None = None
        self._finished = trio.Event()
        self._app_scope = trio.CancelScope()
        self._nursery = HeldNursery()

    async def __aenter__(self) -> Self:
        nursery = await self._nursery.open()
        nursery.start_soon(self._run_app)
        try:
            await self._startup()
        except BaseException as error:
            self._app_scope.cancel()
            await self.__aexit__(type(error), error, error.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        if not self._nursery.is_open:
            return  # already closed by a failed startup
        try:
            if exc_value is None:
                await self._shutdown()
        except BaseException as error:
            self._app_scope.cancel()
            await self._nursery.close(error)
            raise
        self._app_scope.cancel()  # after shutdown, or when the block failed: the app is done
        await self._nursery.close(exc_value)

    async def _run_app(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            with self._app_scope:
                await self.app(scope, self._receive, self._send)
        except Exception as error:
            self._error = unwrap_exception_group(error)
        finally:
            self._from_app.close()
            self._finished.set()

    async def _receive(self) -> Message:
        self._received = True
        try:
            return await self._app_inbox.receive()
        except trio.EndOfChannel:
            # Nothing more will be sent: end the app, as a server drops its lifespan task.
            self._app_scope.cancel()
            await trio.sleep_forever()

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        if self._awaiting is None or kind not in (
            f"{self._awaiting}.complete",
            f"{self._awaiting}.failed",
        ):
            raise RuntimeError(f"Unexpected ASGI lifespan message {kind!r}")
        self._awaiting = None
        self._from_app.send_nowait(message)

    async def _startup(self) -> None:
        reply = await self._ask("lifespan.startup", self.startup_timeout)
        if reply is None and (self._error is None or not self._received):
            self.supported = False  # hypercorn too carries on without lifespan here
            self._error = None

    async def _shutdown(self) -> None:
        if self._finished.is_set():
            if self._error is not None:
                raise self._error  # the lifespan task crashed while the block ran
            return
        await self._ask("lifespan.shutdown", self.shutdown_timeout)
        with trio.move_on_after(self.shutdown_timeout or float("inf")) as scope:
            await self._finished.wait()
        if scope.cancelled_caught:
            raise LifespanFailure("ASGI app did not return after lifespan.shutdown.complete")

    async def _ask(self, phase: str, timeout: float | None) -> Message | None:
        """Send ``phase`` and wait for the answer; None if the app returned without answering."""
        self._awaiting = phase
        self._to_app.send_nowait({"type": phase})
        if phase == "lifespan.shutdown":
            self._to_app.close()
        with trio.move_on_after(float("inf") if timeout is None else timeout) as scope:
            try:
                reply = await self._replies.receive()
            except trio.EndOfChannel:
                reply = None
            if reply is not None and reply["type"].endswith(".failed"):
                self._to_app.close()
                await self._finished.wait()
                if self._error is not None:
                    raise self._error
                raise LifespanFailure(reply.get("message", "") or f"{phase} failed")
        if scope.cancelled_caught:
            raise LifespanFailure(f"ASGI app did not answer {phase} within {timeout} s")
        if reply is None and self._error is not None and self._received:
            raise self._error
        return reply
