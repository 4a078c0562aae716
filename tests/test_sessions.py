"""toolkit.sessions: the session store interface and the in-memory store with expiry."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.sessions import MemorySessionStore, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_set_get_delete() -> None:
    store = MemorySessionStore()
    assert await store.get("id") is None
    await store.set("id", {"user": "alice", "roles": ["admin"]}, ttl=60)
    assert await store.get("id") == {"user": "alice", "roles": ["admin"]}
    await store.set("id", {"user": "bob"}, ttl=60)
    assert await store.get("id") == {"user": "bob"}
    await store.delete("id")
    assert await store.get("id") is None
    await store.delete("id")  # deleting what is not there is fine
    assert len(store) == 0


async def test_data_is_copied_through_json_like_a_shared_store() -> None:
    store = MemorySessionStore()
    data: dict[str, Any] = {"items": [1, 2], "pair": (3, 4)}
    await store.set("id", data, ttl=None)
    data["items"].append(99)
    stored = await store.get("id")
    assert stored == {"items": [1, 2], "pair": [3, 4]}
    assert stored is not None
    stored["items"].append(100)
    assert await store.get("id") == {"items": [1, 2], "pair": [3, 4]}


async def test_data_that_is_not_json_is_refused() -> None:
    with pytest.raises(TypeError):
        await MemorySessionStore().set("id", {"when": object()}, ttl=None)


async def test_sessions_expire_after_their_ttl() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    await store.set("short", {"n": 1}, ttl=10)
    await store.set("long", {"n": 2}, ttl=100)
    await store.set("forever", {"n": 3}, ttl=None)
    clock.now += 9.9
    assert await store.get("short") == {"n": 1}
    clock.now += 0.1
    assert await store.get("short") is None
    assert await store.get("long") == {"n": 2}
    clock.now += 1_000_000
    assert await store.get("long") is None
    assert await store.get("forever") == {"n": 3}


async def test_writing_again_extends_the_ttl() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    await store.set("id", {"n": 1}, ttl=10)
    clock.now += 8
    await store.set("id", {"n": 2}, ttl=10)
    clock.now += 8
    assert await store.get("id") == {"n": 2}
    # The first write's stale expiry must not remove the rewritten session.
    await store.set("other", {}, ttl=10)
    assert await store.get("id") == {"n": 2}


async def test_expired_sessions_are_purged_on_write() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    for index in range(10):
        await store.set(f"old-{index}", {}, ttl=5)
    clock.now += 6
    await store.set("new", {}, ttl=5)
    assert len(store) == 1


async def test_max_sessions_drops_the_one_closest_to_expiry() -> None:
    clock = Clock()
    store = MemorySessionStore(max_sessions=2, clock=clock)
    await store.set("a", {}, ttl=50)
    await store.set("b", {}, ttl=10)
    await store.set("c", {}, ttl=30)
    assert len(store) == 2
    assert await store.get("b") is None
    assert await store.get("a") == {} and await store.get("c") == {}
    # Rewriting an existing session never evicts another.
    await store.set("a", {"again": True}, ttl=50)
    assert len(store) == 2


async def test_stale_heap_entries_are_bounded() -> None:
    store = MemorySessionStore()
    for index in range(1000):
        await store.set("same", {"n": index}, ttl=60)
    assert len(store._expiries) <= 2 * len(store) + 65


def test_max_sessions_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        MemorySessionStore(max_sessions=0)


async def test_a_custom_store_implements_three_methods() -> None:
    class DictStore(SessionStore):
        def __init__(self) -> None:
            self.data: dict[str, dict[str, Any]] = {}

        async def get(self, session_id: str) -> dict[str, Any] | None:
            return self.data.get(session_id)

        async def set(self, session_id: str, data: dict[str, Any], ttl: int | None) -> None:
            self.data[session_id] = data

        async def delete(self, session_id: str) -> None:
            self.data.pop(session_id, None)

    store = DictStore()
    await store.set("x", {"a": 1}, ttl=1)
    assert await store.get("x") == {"a": 1}
    with pytest.raises(TypeError):
        SessionStore()  # type: ignore[abstract]
