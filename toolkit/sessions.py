"""Server-side session stores: where ``SessionMiddleware(..., store=...)`` keeps session data.

With a store, the session cookie holds only a random, signed session id; the
data stays on the server. ``SessionStore`` is the whole interface a store
implements (three async methods, with a time to live), so a shared store such
as Redis can serve an app running on several workers. ``MemorySessionStore``
keeps sessions in this process: right for one worker and for tests.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

__all__ = ["MemorySessionStore", "SessionStore"]


class SessionStore(ABC):
    """Session data by session id. Data is a JSON-serialisable ``dict``; ``ttl`` is in seconds.

    A store must treat an expired session as missing, and ``delete`` of a
    missing id as a no-op.
    """

    @abstractmethod
    async def get(self, session_id: str) -> dict[str, Any] | None:
        """The data saved under ``session_id``, or ``None`` if there is none (or it expired)."""

    @abstractmethod
    async def set(self, session_id: str, data: dict[str, Any], ttl: int | None) -> None:
        """Save ``data`` under ``session_id`` for ``ttl`` seconds (``None``: until deleted)."""

    @abstractmethod
    async def delete(self, session_id: str) -> None:
        """Forget ``session_id``."""


class MemorySessionStore(SessionStore):
    """Sessions in this process's memory, expired after their time to live.

    Data is stored as JSON, as a shared store would: the session read back is a
    copy, never the object that was saved. At most ``max_sessions`` are kept;
    beyond that, the session closest to expiry is dropped to make room.
    ``clock`` (seconds, monotonic) is there for tests.
    """

    def __init__(
        self, max_sessions: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_sessions < 1:
            raise ValueError("max_sessions must be at least 1")
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[str, tuple[float, str]] = {}  # id -> (expires at, JSON)
        self._expiries: list[tuple[float, str]] = []  # a heap; entries may be stale

    def __len__(self) -> int:
        return len(self._sessions)

    async def get(self, session_id: str) -> dict[str, Any] | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        expires_at, payload = entry
        if expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        data: dict[str, Any] = json.loads(payload)
        return data

    async def set(self, session_id: str, data: dict[str, Any], ttl: int | None) -> None:
        payload = json.dumps(data, separators=(",", ":"))
        now = self._clock()
        self._drop_expired(now)
        if session_id not in self._sessions:
            while len(self._sessions) >= self.max_sessions:
                self._drop_soonest()
        expires_at = math.inf if ttl is None else now + ttl
        self._sessions[session_id] = (expires_at, payload)
        heapq.heappush(self._expiries, (expires_at, session_id))
        if len(self._expiries) > 2 * len(self._sessions) + 64:
            # Rewritten and deleted sessions leave stale heap entries behind: rebuild.
            self._expiries = [(entry[0], key) for key, entry in self._sessions.items()]
            heapq.heapify(self._expiries)

    async def delete(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def _is_current(self, expires_at: float, session_id: str) -> bool:
        entry = self._sessions.get(session_id)
        return entry is not None and entry[0] == expires_at

    def _drop_expired(self, now: float) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            expires_at, session_id = heapq.heappop(expiries)
            if self._is_current(expires_at, session_id):
                del self._sessions[session_id]

    def _drop_soonest(self) -> None:
        while True:
            expires_at, session_id = heapq.heappop(self._expiries)
            if self._is_current(expires_at, session_id):
                del self._sessions[session_id]
                return
