"""toolkit.testing.leaks: finding tasks that outlive their owner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from toolkit.receiver import RequestReceiver
from toolkit.testing.leaks import TaskLeakChecker, TaskLeakError
from toolkit.types import Message

pytest_plugins = ["pytester"]

TIME_LIMIT = 2


def foreign(source: str, name: str) -> Callable[..., Awaitable[None]]:
    """A coroutine function that belongs to a module named ``elsewhere``."""
    namespace: dict[str, object] = {"__name__": "elsewhere", "trio": trio}
    exec(source, namespace)
    function = namespace[name]
    assert callable(function)
    return function


async def test_a_toolkit_task_still_alive_is_a_leak() -> None:
    release = trio.Event()
    checker = TaskLeakChecker()
    with trio.fail_after(TIME_LIMIT):
        async with checker:
            trio.lowlevel.spawn_system_task(release.wait, name="toolkit request companion /x")
            await trio.testing.wait_all_tasks_blocked()
            assert checker.leaked() == ["toolkit request companion /x"]
            with pytest.raises(TaskLeakError, match=r"1 task\(s\) still alive: toolkit request"):
                checker.check()
            release.set()
            await trio.testing.wait_all_tasks_blocked()
            checker.check()  # it exited: no leak


async def test_the_block_exit_raises_for_a_leak() -> None:
    release = trio.Event()
    with trio.fail_after(TIME_LIMIT):
        try:
            with pytest.raises(TaskLeakError, match=r"toolkit\.pending"):
                async with TaskLeakChecker():
                    trio.lowlevel.spawn_system_task(release.wait, name="toolkit.pending")
        finally:
            release.set()


async def test_a_failing_block_is_not_checked() -> None:
    release = trio.Event()
    with trio.fail_after(TIME_LIMIT):
        try:
            with pytest.raises(KeyError):  # the block's own error, not a TaskLeakError
                async with TaskLeakChecker():
                    trio.lowlevel.spawn_system_task(release.wait, name="toolkit.pending")
                    raise KeyError("the real failure")
        finally:
            release.set()


async def test_tasks_of_named_modules_are_watched_others_are_not() -> None:
    release = trio.Event()

    async def mine() -> None:
        await release.wait()

    idle = foreign("async def idle(event):\n    await event.wait()\n", "idle")
    default = TaskLeakChecker()
    with_this_module = TaskLeakChecker(modules=[__name__])
    with trio.fail_after(TIME_LIMIT):
        async with default, with_this_module, trio.open_nursery() as nursery:
            nursery.start_soon(mine)
            nursery.start_soon(idle, release)
            await trio.testing.wait_all_tasks_blocked()
            assert default.leaked() == []
            assert with_this_module.leaked() == [
                f"{__name__}.test_tasks_of_named_modules_are_watched_others_are_not.<locals>.mine"
            ]
            assert default.spawned == with_this_module.spawned == 2
            release.set()


async def test_a_foreign_task_running_toolkit_code_is_watched() -> None:
    # A server's request task belongs to the server, but while it is inside toolkit's code
    # it is toolkit's to end.
    async def never(self: object = None) -> Message:
        await trio.sleep_forever()
        raise AssertionError("not reached")

    class Owner:
        def client_disconnected(self) -> None:
            raise AssertionError("not reached")

    receiver = RequestReceiver(never, Owner(), None, None)  # type: ignore[arg-type]
    server_task = foreign("async def handle(app):\n    await app()\n", "handle")
    checker = TaskLeakChecker()
    with trio.fail_after(TIME_LIMIT):
        async with checker, trio.open_nursery() as nursery:
            nursery.start_soon(server_task, receiver.watch, name="elsewhere.handle")
            await trio.testing.wait_all_tasks_blocked()
            assert checker.leaked() == ["elsewhere.handle"]
            nursery.cancel_scope.cancel()


async def test_tasks_running_before_the_checker_are_ignored() -> None:
    release = trio.Event()
    with trio.fail_after(TIME_LIMIT):
        trio.lowlevel.spawn_system_task(release.wait, name="toolkit.older")
        try:
            async with TaskLeakChecker() as checker:
                await trio.testing.wait_all_tasks_blocked()
                assert checker.leaked() == []
        finally:
            release.set()


FIXTURE_TESTS = """
import pytest
import trio

from toolkit.testing.leaks import no_task_leaks

RELEASE = []


@pytest.fixture
def app(no_task_leaks):
    return "an app whose server or client tears down before the leak check"


async def test_clean(app):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0)


async def test_leaky(app):
    release = trio.Event()
    RELEASE.append(release)
    trio.lowlevel.spawn_system_task(release.wait, name="toolkit.leaked")


async def test_release_the_leak():
    RELEASE[0].set()
"""


def test_the_fixture_fails_a_test_that_leaks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_fixture=FIXTURE_TESTS)
    result = pytester.runpytest("-p", "pytest_trio.plugin")
    result.assert_outcomes(passed=2, failed=1)  # pytest-trio reports teardown errors so
    result.stdout.fnmatch_lines(["*TaskLeakError: 1 task(s) still alive: toolkit.leaked*"])
