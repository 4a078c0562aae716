"""``SessionMiddleware``: ``request.session``, a dict kept across requests.

Two ways to keep it, chosen by ``store``:

- without a store (Starlette's way), the whole session travels in the cookie:
  JSON, base64, signed and timestamped with itsdangerous. The client can read
  it but not change it;
- with a ``toolkit.sessions.SessionStore``, the cookie holds only a signed,
  random session id and the data stays on the server.

A cookie that is tampered with, expired, unreadable or larger than
``max_cookie_size`` gives an empty session, never an error. The cookie is
written only when the session was changed (through the dict's methods:
mutating a value in place does not count, assign it again); a session
emptied of everything clears the cookie. Clearing a server-side session also
retires its id, so a session id known before a login is worthless after it.
WebSocket handshakes get the session too; changes made before ``accept``
are saved with it.
"""

from __future__ import annotations

import json
import logging
import secrets
from base64 import b64decode, b64encode
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import itsdangerous
from itsdangerous.exc import BadSignature

from toolkit.datastructures import MutableHeaders, Secret
from toolkit.requests import HTTPConnection
from toolkit.sessions import SessionStore
from toolkit.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

logger = logging.getLogger("toolkit")

__all__ = ["Session", "SessionMiddleware"]

#: The messages that carry the response headers a session cookie is set in.
_HEADER_MESSAGES = frozenset(
    {"http.response.start", "websocket.accept", "websocket.http.response.start"}
)
_EXPIRED = "expires=Thu, 01 Jan 1970 00:00:00 GMT; "


class Session(dict[str, Any]):
    """The session: a ``dict`` that notes whether it was read and whether it was changed.

    Reading it adds ``Vary: Cookie`` to the response (caches must not share
    it); changing it, through its methods, saves it.
    """

    accessed = False
    modified = False
    cleared = False

    def mark_accessed(self) -> None:
        self.accessed = True

    def mark_modified(self) -> None:
        self.accessed = True
        self.modified = True

    def __getitem__(self, key: str) -> Any:
        self.accessed = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.accessed = True
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.accessed = True
        return super().__contains__(key)

    def __len__(self) -> int:
        self.accessed = True
        return super().__len__()

    def __iter__(self) -> Iterator[str]:
        self.accessed = True
        return super().__iter__()

    def keys(self) -> dict_keys[str, Any]:
        self.accessed = True
        return super().keys()

    def values(self) -> dict_values[str, Any]:
        self.accessed = True
        return super().values()

    def items(self) -> dict_items[str, Any]:
        self.accessed = True
        return super().items()

    def __setitem__(self, key: str, value: Any) -> None:
        self.mark_modified()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.mark_modified()
        super().__delitem__(key)

    def clear(self) -> None:
        self.mark_modified()
        self.cleared = True
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        if super().__contains__(key):
            self.mark_modified()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self.mark_modified()
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        if not super().__contains__(key):
            self.mark_modified()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.mark_modified()
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self.mark_modified()
        return super().__ior__(other)


class SessionMiddleware:
    """Give every HTTP request and WebSocket a ``session``, saved in a signed cookie.

    The options are Starlette's: ``max_age`` in seconds (``None``: the cookie
    lasts the browser session; server-side data then never expires on its
    own), ``same_site``, ``https_only`` (the ``Secure`` flag), ``domain``,
    ``partitioned``. ``store`` keeps the data on the server instead (see
    ``toolkit.sessions``); ``max_cookie_size`` caps the cookie read (bytes).
    """

    def __init__(
        self,
        app: ASGIApp,
        secret_key: str | Secret,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        store: SessionStore | None = None,
        max_cookie_size: int = 4096,
    ) -> None:
        self.app = app
        self.signer = itsdangerous.TimestampSigner(str(secret_key))
        self.session_cookie = session_cookie
        self.max_age = max_age
        self.path = path
        self.store = store
        self.max_cookie_size = max_cookie_size
        flags = "httponly; samesite=" + same_site
        if https_only:
            flags += "; secure"
        if domain is not None:
            flags += f"; domain={domain}"
        if partitioned:
            flags += "; partitioned"
        self.security_flags = flags

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        payload = self.read_cookie(HTTPConnection(scope).cookies.get(self.session_cookie))
        session_id: str | None = None
        data: dict[str, Any] = {}
        if payload is not None:
            if self.store is None:
                data = _decode(payload)
            else:
                session_id = payload.decode("ascii", "replace")
                stored = await self.store.get(session_id)
                if stored is None:
                    session_id = None  # expired or unknown: never adopt an id we did not issue
                else:
                    data = stored
        session = Session(data)
        scope["session"] = session
        had_session = bool(data) or session_id is not None

        async def send_with_session(message: Message) -> None:
            if message["type"] in _HEADER_MESSAGES:
                headers = MutableHeaders(scope=message)
                if session.accessed:
                    headers.add_vary_header("Cookie")
                if session.modified:
                    cookie = await self.save(session, session_id, had_session)
                    if cookie is not None:
                        headers.append("Set-Cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_session)

    def read_cookie(self, value: str | None) -> bytes | None:
        """The payload of a session cookie, or ``None`` if it is absent, too large or not ours."""
        if not value or len(value) > self.max_cookie_size:
            return None
        try:
            payload: bytes = self.signer.unsign(value.encode("utf-8"), max_age=self.max_age)
        except BadSignature:
            return None
        return payload

    async def save(self, session: Session, session_id: str | None, had_session: bool) -> str | None:
        """Persist a changed session; the ``Set-Cookie`` value to send, if any."""
        store = self.store
        if store is not None and session_id is not None and session.cleared:
            await store.delete(session_id)  # retire the old id, whatever comes next
            session_id = None
        if not dict.__len__(session):
            if store is not None and session_id is not None:
                await store.delete(session_id)
            if not had_session:
                return None
            return f"{self.session_cookie}=null; path={self.path}; {_EXPIRED}{self.security_flags}"
        if store is None:
            payload = b64encode(json.dumps(session).encode("utf-8"))
        else:
            if session_id is None:
                session_id = secrets.token_urlsafe(32)
            await store.set(session_id, dict(session), ttl=self.max_age)
            payload = session_id.encode("ascii")
        value = self.signer.sign(payload).decode("utf-8")
        if len(value) > self.max_cookie_size:
            logger.warning(
                "The %r session cookie is %d bytes, over max_cookie_size=%d: browsers may drop "
                "it and it will be ignored when sent back. Keep less in the session, or use a "
                "server-side store.",
                self.session_cookie,
                len(value),
                self.max_cookie_size,
            )
        max_age = f"Max-Age={self.max_age}; " if self.max_age is not None else ""
        return f"{self.session_cookie}={value}; path={self.path}; {max_age}{self.security_flags}"


def _decode(payload: bytes) -> dict[str, Any]:
    """A cookie session's data; anything but a JSON object gives an empty session."""
    try:
        data = json.loads(b64decode(payload, validate=True))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
