"""toolkit.testing.lifespan: startup and shutdown around a block, failures raised."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from toolkit.testing.lifespan import LifespanFailure, LifespanManager
from toolkit.types import Receive, Scope, Send


class LifespanApp:
    """Records lifespan events; answers each phase as told by ``answers``."""

    def __init__(self, **answers: str) -> None:
        self.events: list[str] = []
        self.answers = answers  # phase -> "complete" | "failed" | "raise" | "hang"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
        while True:
            phase = (await receive())["type"].removeprefix("lifespan.")
            self.events.append(phase)
            if phase == "startup":
                scope["state"]["ready"] = True
            answer = self.answers.get(phase, "complete")
            if answer == "raise":
                raise LookupError(f"{phase} raised")
            if answer == "hang":
                await trio.sleep_forever()
            await send({"type": f"lifespan.{phase}.{answer}", "message": f"{phase} broke"})
            if phase == "shutdown":
                return


async def test_startup_then_block_then_shutdown() -> None:
    app = LifespanApp()
    state: dict[str, Any] = {}
    async with LifespanManager(app, state) as manager:
        assert app.events == ["startup"]
        assert state == {"ready": True}
        assert manager.supported
        app.events.append("block")
    assert app.events == ["startup", "block", "shutdown"]


async def test_startup_failed_raises_with_the_message() -> None:
    app = LifespanApp(startup="failed")
    with pytest.raises(LifespanFailure, match="startup broke"):
        async with LifespanManager(app):
            pytest.fail("the block must not run")
    assert app.events == ["startup"]


async def test_startup_failed_then_raising_reraises_the_app_error() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            raise ValueError("database unreachable")
        except ValueError:
            await send({"type": "lifespan.startup.failed", "message": "traceback..."})
            raise

    with pytest.raises(ValueError, match="database unreachable"):
        async with LifespanManager(app):
            pass


async def test_an_app_raising_during_startup_raises() -> None:
    app = LifespanApp(startup="raise")
    with pytest.raises(LookupError, match="startup raised"):
        async with LifespanManager(app):
            pass


async def test_an_app_without_lifespan_support_is_skipped() -> None:
    block_ran = False

    async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"

    async with LifespanManager(http_only) as manager:
        block_ran = True
        assert not manager.supported
    assert block_ran


async def test_an_app_returning_without_answer_is_skipped() -> None:
    async def ignores_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()

    async with LifespanManager(ignores_lifespan) as manager:
        assert not manager.supported


async def test_shutdown_failed_raises_on_exit() -> None:
    app = LifespanApp(shutdown="failed")
    with pytest.raises(LifespanFailure, match="shutdown broke"):
        async with LifespanManager(app):
            pass
    assert app.events == ["startup", "shutdown"]


async def test_an_app_raising_during_shutdown_raises() -> None:
    app = LifespanApp(shutdown="raise")
    with pytest.raises(LookupError, match="shutdown raised"):
        async with LifespanManager(app):
            pass


async def test_an_app_crashing_while_the_block_runs_raises_at_exit() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        raise LookupError("crashed later")

    with pytest.raises(LookupError, match="crashed later"):
        async with LifespanManager(app):
            await trio.sleep(0)


async def test_startup_timeout(autojump_clock: trio.testing.MockClock) -> None:
    app = LifespanApp(startup="hang")
    with pytest.raises(LifespanFailure, match=r"did not answer lifespan\.startup within 5"):
        async with LifespanManager(app, startup_timeout=5):
            pass


async def test_shutdown_timeout(autojump_clock: trio.testing.MockClock) -> None:
    app = LifespanApp(shutdown="hang")
    with pytest.raises(LifespanFailure, match=r"did not answer lifespan\.shutdown within 5"):
        async with LifespanManager(app, shutdown_timeout=5):
            pass


async def test_a_block_error_skips_shutdown_and_cancels_the_app() -> None:
    app = LifespanApp()
    with pytest.raises(KeyError, match="from the block"):
        async with LifespanManager(app):
            raise KeyError("from the block")
    assert app.events == ["startup"]


async def test_an_unexpected_message_raises_in_the_app() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    with pytest.raises(RuntimeError, match=r"Unexpected ASGI lifespan message"):
        async with LifespanManager(app):
            pass


async def test_an_app_that_keeps_receiving_after_shutdown_is_ended() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})

    with trio.fail_after(1):
        async with LifespanManager(app):
            pass
