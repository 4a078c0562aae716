"""toolkit.companion: the helper task hosting an owner's children and services."""

from __future__ import annotations

import contextvars

import pytest
import trio

from toolkit.companion import Companion


class Owner:
    """Records what its companion reports."""

    def __init__(self) -> None:
        self.failures: list[BaseException] = []

    def child_failed(self, error: BaseException) -> None:
        self.failures.append(error)


async def test_join_waits_for_the_children() -> None:
    owner = Owner()
    companion = Companion(owner, "test companion")
    finished: list[str] = []

    async def child(name: str, delay: float) -> None:
        await trio.sleep(delay)
        finished.append(name)

    companion.nursery.start_soon(child, "slow", 0.02)
    companion.nursery.start_soon(child, "quick", 0)
    await companion.join()
    assert sorted(finished) == ["quick", "slow"]
    assert owner.failures == []


async def test_join_cancels_the_services_but_not_the_children() -> None:
    companion = Companion(Owner(), "test companion")
    events: list[str] = []

    async def service() -> None:
        try:
            await trio.sleep_forever()
        finally:
            events.append("service cancelled")

    async def child() -> None:
        await trio.sleep(0.01)
        events.append("child done")

    companion.start_service(service)
    companion.nursery.start_soon(child)
    with trio.fail_after(1):
        await companion.join()
    assert sorted(events) == ["child done", "service cancelled"]


async def test_a_service_started_once_the_owner_joins_never_runs() -> None:
    companion = Companion(Owner(), "test companion")
    ran: list[str] = []

    async def service() -> None:
        ran.append("ran")

    await companion.join()
    companion.start_service(service)
    await trio.testing.wait_all_tasks_blocked()
    assert ran == []


async def test_a_failing_child_cancels_its_siblings_and_is_reported_unwrapped() -> None:
    owner = Owner()
    companion = Companion(owner, "test companion")
    sibling_cancelled = trio.Event()

    async def sibling() -> None:
        try:
            await trio.sleep_forever()
        finally:
            sibling_cancelled.set()

    async def failing() -> None:
        await trio.sleep(0.01)
        raise ValueError("boom")

    companion.nursery.start_soon(sibling)
    companion.nursery.start_soon(failing)
    with trio.fail_after(1):
        await companion.join()
    assert sibling_cancelled.is_set()
    assert len(owner.failures) == 1
    assert isinstance(owner.failures[0], ValueError)


async def test_cancelling_the_join_cancels_the_children_and_waits_for_them() -> None:
    companion = Companion(Owner(), "test companion")
    cleaned = trio.Event()

    async def child() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.01)  # slow cleanup: the join still waits for it
            cleaned.set()

    companion.nursery.start_soon(child)
    with trio.move_on_after(0.02):
        await companion.join()
    assert cleaned.is_set()


async def test_children_keep_the_context_variables_of_their_starter() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    companion = Companion(Owner(), "test companion")
    seen: list[str] = []

    async def child() -> None:
        seen.append(var.get())

    var.set("at start")
    companion.nursery.start_soon(child)  # before the companion task has run
    await companion.join()
    assert seen == ["at start"]


async def test_start_returns_the_childs_started_value() -> None:
    companion = Companion(Owner(), "test companion")

    async def child(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(42)

    assert await companion.nursery.start(child) == 42
    await companion.join()


async def test_the_nursery_cancel_scope_cancels_the_children_only() -> None:
    companion = Companion(Owner(), "test companion")
    outcome: list[str] = []

    async def child() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            outcome.append("child cancelled")
            raise

    companion.nursery.start_soon(child)
    await trio.testing.wait_all_tasks_blocked()
    companion.nursery.cancel_scope.cancel()
    await companion.join()
    assert outcome == ["child cancelled"]


async def test_starting_a_child_after_the_join_raises() -> None:
    companion = Companion(Owner(), "test companion")
    companion.nursery.start_soon(trio.sleep, 0)
    await companion.join()
    with pytest.raises(RuntimeError):
        companion.nursery.start_soon(trio.sleep, 0)
