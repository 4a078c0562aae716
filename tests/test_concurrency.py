"""toolkit.concurrency: worker threads under limiters, and telling async callables apart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import aclosing
from functools import partial
from typing import Any

import pytest
import trio

from toolkit.applications import App
from toolkit.concurrency import (
    app_thread_limiter,
    current_thread_limiter,
    is_async_callable,
    iterate_in_thread,
    run_in_thread,
)

# ----------------------------------------------------------------------------- run_in_thread


async def test_run_in_thread_runs_in_a_worker_thread_and_returns_the_result() -> None:
    def where(a: int, b: int) -> tuple[int, int]:
        return a + b, threading.get_ident()

    total, thread = await run_in_thread(where, 2, 3)
    assert total == 5
    assert thread != threading.get_ident()


async def test_run_in_thread_propagates_the_exception() -> None:
    def fail() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await run_in_thread(fail)


async def test_run_in_thread_respects_the_limiter() -> None:
    limiter = trio.CapacityLimiter(2)
    lock = threading.Lock()
    running = 0
    peak = 0

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.02)
        with lock:
            running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(partial(run_in_thread, work, limiter=limiter))
    assert peak == 2


async def test_run_in_thread_uses_the_current_thread_limiter_by_default() -> None:
    limiter = trio.CapacityLimiter(3)
    token = current_thread_limiter.set(limiter)
    try:
        borrowed = await run_in_thread(lambda: limiter.borrowed_tokens)
    finally:
        current_thread_limiter.reset(token)
    assert borrowed == 1
    assert limiter.borrowed_tokens == 0


def test_app_thread_limiter_is_the_apps() -> None:
    app = App(thread_limit=3)
    limiter = app_thread_limiter({"app": app})
    assert limiter is app.thread_limiter
    assert limiter is not None and limiter.total_tokens == 3
    assert app_thread_limiter({}) is None


# ----------------------------------------------------------------------------- iterate_in_thread


async def test_iterate_in_thread_yields_every_item_from_worker_threads() -> None:
    threads: list[int] = []

    def numbers() -> Iterator[int]:
        for number in range(4):
            threads.append(threading.get_ident())
            yield number

    assert [item async for item in iterate_in_thread(numbers())] == [0, 1, 2, 3]
    assert threading.get_ident() not in threads


async def test_iterate_in_thread_accepts_plain_iterables() -> None:
    assert [item async for item in iterate_in_thread(["a", "b"])] == ["a", "b"]
    nothing: list[str] = []
    assert [item async for item in iterate_in_thread(nothing)] == []


async def test_iterate_in_thread_respects_the_limiter() -> None:
    limiter = trio.CapacityLimiter(1)
    borrowed: list[int] = []

    def numbers() -> Iterator[int]:
        for number in range(2):
            borrowed.append(limiter.borrowed_tokens)
            yield number

    assert [n async for n in iterate_in_thread(numbers(), limiter=limiter)] == [0, 1]
    assert borrowed == [1, 1]


async def test_iterate_in_thread_closes_the_generator_when_stopped_early() -> None:
    events: list[str] = []

    def numbers() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            events.append(f"closed in worker: {threading.get_ident() != trio_thread}")

    trio_thread = threading.get_ident()
    chunks = iterate_in_thread(numbers())
    assert await anext(chunks) == 0
    assert await anext(chunks) == 1
    await chunks.aclose()  # type: ignore[attr-defined]
    assert events == ["closed in worker: True"]


async def test_iterate_in_thread_closes_the_generator_even_when_cancelled() -> None:
    closed_in: list[bool] = []

    def numbers() -> Iterator[int]:
        try:
            yield from range(100)
        finally:
            closed_in.append(threading.get_ident() != trio_thread)

    trio_thread = threading.get_ident()
    with trio.move_on_after(0.01) as cancel_scope:
        async with aclosing(iterate_in_thread(numbers())) as chunks:  # type: ignore[type-var]
            async for _ in chunks:
                await trio.sleep_forever()
    assert cancel_scope.cancelled_caught
    assert closed_in == [True]  # closed in a worker, despite the cancellation


async def test_iterate_in_thread_propagates_the_iterators_error() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("bad item")

    received: list[int] = []
    with pytest.raises(ValueError, match="bad item"):
        async for item in iterate_in_thread(broken()):
            received.append(item)
    assert received == [1]


# ----------------------------------------------------------------------------- is_async_callable


async def _async_function() -> None:
    pass


def _sync_function() -> None:
    pass


class _AsyncCallable:
    async def __call__(self) -> None:
        pass


class _SyncCallable:
    def __call__(self) -> None:
        pass


class _Methods:
    async def async_method(self) -> None:
        pass

    def sync_method(self) -> None:
        pass


@pytest.mark.parametrize(
    "obj",
    [
        _async_function,
        partial(_async_function),
        partial(partial(_async_function)),
        _AsyncCallable(),
        partial(_AsyncCallable()),
        _Methods().async_method,
    ],
    ids=["function", "partial", "nested-partial", "async-call", "partial-of-async-call", "method"],
)
def test_is_async_callable_true(obj: Any) -> None:
    assert is_async_callable(obj)


async def _async_generator() -> Any:
    yield


@pytest.mark.parametrize(
    "obj",
    [
        _sync_function,
        partial(_sync_function),
        _SyncCallable(),
        _Methods().sync_method,
        lambda: None,
        _async_generator,
        "not callable",
        None,
    ],
    ids=["function", "partial", "sync-call", "method", "lambda", "async-gen", "str", "none"],
)
def test_is_async_callable_false(obj: Any) -> None:
    assert not is_async_callable(obj)
