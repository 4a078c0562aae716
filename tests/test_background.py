"""toolkit.background: calls to make after the response, sync ones in a worker thread."""

from __future__ import annotations

import threading
from functools import partial

import pytest
import trio

from toolkit.background import BackgroundTask, BackgroundTasks
from toolkit.concurrency import current_thread_limiter


async def test_async_task_runs_in_the_trio_thread_with_args_and_kwargs() -> None:
    calls: list[tuple[object, ...]] = []
    trio_thread = threading.get_ident()

    async def record(a: int, b: int, *, c: str) -> None:
        await trio.lowlevel.checkpoint()
        calls.append((a, b, c, threading.get_ident()))

    task = BackgroundTask(record, 1, 2, c="three")
    assert task.is_async
    await task()
    assert calls == [(1, 2, "three", trio_thread)]


async def test_sync_task_runs_in_a_worker_thread_with_args_and_kwargs() -> None:
    calls: list[tuple[object, ...]] = []

    def record(a: int, *, b: str) -> None:
        calls.append((a, b, threading.get_ident()))

    task = BackgroundTask(record, 7, b="x")
    assert not task.is_async
    await task()
    assert len(calls) == 1
    assert calls[0][:2] == (7, "x")
    assert calls[0][2] != threading.get_ident()


async def test_sync_task_uses_the_current_thread_limiter() -> None:
    limiter = trio.CapacityLimiter(1)
    seen: list[int] = []

    def record() -> None:
        seen.append(limiter.borrowed_tokens)

    token = current_thread_limiter.set(limiter)
    try:
        await BackgroundTask(record)()
    finally:
        current_thread_limiter.reset(token)
    assert seen == [1]


async def test_partial_of_async_function_is_awaited() -> None:
    calls: list[int] = []

    async def record(value: int) -> None:
        calls.append(value)

    task = BackgroundTask(partial(record, 5))
    assert task.is_async
    await task()
    assert calls == [5]


async def test_background_tasks_run_in_order_added_mixing_sync_and_async() -> None:
    order: list[str] = []

    async def async_step(name: str) -> None:
        await trio.sleep(0.01)  # a slow first step must still finish first
        order.append(name)

    def sync_step(name: str) -> None:
        order.append(name)

    tasks = BackgroundTasks([BackgroundTask(async_step, "first")])
    tasks.add_task(sync_step, "second")
    tasks.add_task(async_step, name="third")
    tasks.add_task(sync_step, name="fourth")
    await tasks()
    assert order == ["first", "second", "third", "fourth"]


async def test_background_tasks_stop_at_the_first_failure() -> None:
    ran: list[str] = []

    def boom() -> None:
        raise ValueError("boom")

    tasks = BackgroundTasks()
    tasks.add_task(ran.append, "before")
    tasks.add_task(boom)
    tasks.add_task(ran.append, "after")
    with pytest.raises(ValueError, match="boom"):
        await tasks()
    assert ran == ["before"]


async def test_empty_background_tasks_do_nothing() -> None:
    await BackgroundTasks()()


def test_task_names_describe_the_calls() -> None:
    def send_email() -> None:
        pass

    async def notify() -> None:
        pass

    assert BackgroundTask(send_email).name.endswith("send_email")
    tasks = BackgroundTasks()
    tasks.add_task(send_email)
    tasks.add_task(notify)
    assert tasks.name.startswith("BackgroundTasks(")
    assert "send_email" in tasks.name and "notify" in tasks.name
    assert tasks.name.index("send_email") < tasks.name.index("notify")
