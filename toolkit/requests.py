"""The incoming side: ``HTTPConnection`` (shared with WebSockets) and ``Request``."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack
from http import cookies as http_cookies
from typing import TYPE_CHECKING, Any, NoReturn

import trio

from toolkit.companion import TaskNursery
from toolkit.datastructures import URL, Address, Headers, QueryParams, State
from toolkit.exceptions import HTTPException
from toolkit.request_scope import SCOPE_KEY, RequestScope
from toolkit.types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from toolkit.datastructures import FormData, URLPath
    from toolkit.formparsers import AwaitableForm


class ClientDisconnect(Exception):
    """The client went away while the request body was being read."""


class MalformedJSON(HTTPException, json.JSONDecodeError):
    """``request.json()`` on a body that is not JSON: a 400, also a ``json.JSONDecodeError``."""

    def __init__(self, error: json.JSONDecodeError | UnicodeDecodeError) -> None:
        if isinstance(error, json.JSONDecodeError):
            msg, doc, pos = error.msg, error.doc, error.pos
        else:
            msg, doc, pos = f"Body is not UTF-8: {error.reason}", "", error.start
        json.JSONDecodeError.__init__(self, msg, doc, pos)
        self.status_code = 400
        self.detail = f"Malformed JSON: {msg}"
        self.headers = None


def cookie_parser(cookie_string: str) -> dict[str, str]:
    """Parse a ``Cookie`` header leniently, as browsers send it; junk is skipped, never raised."""
    cookie_dict: dict[str, str] = {}
    for chunk in cookie_string.split(";"):
        key, sep, value = chunk.partition("=")
        if not sep:
            # A bare value with no name, as some browsers send; keep it under "".
            key, value = "", key
        key, value = key.strip(), value.strip()
        if key or value:
            try:
                cookie_dict[key] = http_cookies._unquote(value)
            except Exception:  # pragma: no cover - _unquote is lenient; stay robust anyway
                continue
    return cookie_dict


class HTTPConnection(Mapping[str, Any]):
    """What HTTP requests and WebSocket sessions have in common: the scope, read lazily."""

    __slots__ = ("_base_url", "_cookies", "_headers", "_query_params", "_url", "scope")

    def __init__(self, scope: Scope, receive: Receive | None = None) -> None:
        assert scope["type"] in ("http", "websocket")
        self.scope = scope
        self._headers: Headers | None = None
        self._url: URL | None = None
        self._base_url: URL | None = None
        self._query_params: QueryParams | None = None
        self._cookies: dict[str, str] | None = None

    def __getitem__(self, key: str) -> Any:
        return self.scope[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scope)

    def __len__(self) -> int:
        return len(self.scope)

    # A connection is its own identity, not equal to another wrapping the same scope.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    @property
    def app(self) -> Any:
        return self.scope["app"]

    @property
    def url(self) -> URL:
        if self._url is None:
            self._url = URL(scope=self.scope)
        return self._url

    @property
    def base_url(self) -> URL:
        if self._base_url is None:
            base_scope = dict(self.scope)
            app_root_path = base_scope.get("app_root_path", base_scope.get("root_path", ""))
            path = app_root_path if app_root_path.endswith("/") else app_root_path + "/"
            base_scope["path"] = path
            base_scope["query_string"] = b""
            base_scope["root_path"] = app_root_path
            self._base_url = URL(scope=base_scope)
        return self._base_url

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(scope=self.scope)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        if self._query_params is None:
            self._query_params = QueryParams(self.scope["query_string"])
        return self._query_params

    @property
    def path_params(self) -> dict[str, Any]:
        params: dict[str, Any] = self.scope.get("path_params", {})
        return params

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            cookie_header = self.headers.get("cookie")
            self._cookies = cookie_parser(cookie_header) if cookie_header else {}
        return self._cookies

    @property
    def client(self) -> Address | None:
        host_port = self.scope.get("client")
        return Address(*host_port) if host_port is not None else None

    @property
    def session(self) -> dict[str, Any]:
        assert "session" in self.scope, (
            "SessionMiddleware must be installed to access request.session"
        )
        session: dict[str, Any] = self.scope["session"]
        return session

    @property
    def auth(self) -> Any:
        assert "auth" in self.scope, (
            "AuthenticationMiddleware must be installed to access request.auth"
        )
        return self.scope["auth"]

    @property
    def user(self) -> Any:
        assert "user" in self.scope, (
            "AuthenticationMiddleware must be installed to access request.user"
        )
        return self.scope["user"]

    @property
    def state(self) -> State:
        """Per-connection state, seeded with a shallow copy of the lifespan state."""
        state = self.scope.get("state")
        if state is None:
            state = self.scope["state"] = {}
        if not isinstance(state, State):
            state = self.scope["state"] = State(state)
        return state

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """The absolute URL of the route called ``name``, as seen by this client."""
        url_path_provider = self.scope.get("router") or self.scope.get("app")
        if url_path_provider is None:
            raise RuntimeError(
                "The `url_for` method can only be used inside a toolkit app or router."
            )
        url_path: URLPath = url_path_provider.url_path_for(name, **path_params)
        return url_path.make_absolute_url(base_url=self.base_url)


async def _receive_nothing() -> NoReturn:
    raise RuntimeError("Receive channel has not been made available")


async def _send_nothing(message: Message) -> NoReturn:
    raise RuntimeError("Send channel has not been made available")


class Request(HTTPConnection):
    """An HTTP request: the scope plus the body, read from ``receive`` once and cached."""

    __slots__ = ("_body", "_form", "_json", "_receive", "_send", "_stream_consumed")

    def __init__(
        self, scope: Scope, receive: Receive = _receive_nothing, send: Send = _send_nothing
    ) -> None:
        assert scope["type"] == "http"
        self.scope = scope
        self._headers = None
        self._url = None
        self._base_url = None
        self._query_params = None
        self._cookies = None
        self._receive = receive
        self._send = send
        self._stream_consumed = False
        self._body: bytes | None = None
        self._json: Any = _MISSING
        self._form: Any = None

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def receive(self) -> Receive:
        return self._receive

    async def stream(self) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk; once only, unless ``body()`` cached it."""
        if self._body is not None:
            yield self._body
            yield b""
            return
        self._start_reading()
        more = True
        while more:
            chunk, more = await self._read_chunk()
            if chunk:
                yield chunk
        yield b""

    async def body(self) -> bytes:
        """The whole body, read once and cached."""
        if self._body is None:
            # The same reads as ``stream()``, without an async generator (this path is hot).
            self._start_reading()
            chunk, more = await self._read_chunk()
            if more:
                chunks = [chunk]
                while more:
                    chunk, more = await self._read_chunk()
                    chunks.append(chunk)
                chunk = b"".join(chunks)
            self._body = chunk
        return self._body

    def _start_reading(self) -> None:
        if self._stream_consumed:
            raise RuntimeError("Stream consumed")
        self._stream_consumed = True

    async def _read_chunk(self) -> tuple[bytes, bool]:
        """The next piece of the body, and whether more follows."""
        while True:
            message = await self._receive()
            message_type = message["type"]
            if message_type == "http.request":
                return message.get("body", b""), message.get("more_body", False)
            if message_type == "http.disconnect":
                raise ClientDisconnect()

    async def json(self) -> Any:
        """The body parsed as JSON; a body that is not JSON is a 400 (``MalformedJSON``)."""
        if self._json is _MISSING:
            body = await self.body()
            try:
                self._json = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise MalformedJSON(exc) from exc
        return self._json

    def form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> AwaitableForm:
        """The body parsed as a form, once and cached: ``await`` it, or ``async with`` it to
        close its uploaded files at the end of the block. Limits: see docs/forms.md."""
        from toolkit.formparsers import AwaitableForm

        return AwaitableForm(self._parse_form(max_files, max_fields, max_part_size))

    async def _parse_form(
        self, max_files: int | float, max_fields: int | float, max_part_size: int
    ) -> FormData:
        if self._form is None:
            from toolkit.formparsers import parse_form

            self._form = await parse_form(
                self.headers,
                self.stream(),
                max_files=max_files,
                max_fields=max_fields,
                max_part_size=max_part_size,
            )
        form: FormData = self._form
        return form

    async def close(self) -> None:
        """Release what the request holds (uploaded files of a parsed form)."""
        if self._form is not None:
            await self._form.close()

    # -- the request scope (see toolkit/request_scope.py and docs/concurrency.md)

    @property
    def _request_scope(self) -> RequestScope:
        request_scope: RequestScope | None = self.scope.get(SCOPE_KEY)
        if request_scope is None:
            raise RuntimeError("This needs the request to be served by a toolkit App.")
        return request_scope

    @property
    def nursery(self) -> TaskNursery:
        """Start child tasks here: they are joined (or cancelled) before the request ends."""
        return self._request_scope.nursery

    @property
    def deadline(self) -> float:
        """The trio time at which this request is cancelled (``math.inf`` when unlimited)."""
        request_scope: RequestScope | None = self.scope.get(SCOPE_KEY)
        return math.inf if request_scope is None else request_scope.deadline

    @property
    def exit_stack(self) -> AsyncExitStack:
        """Resources that must live until the last byte is sent, closed before background tasks."""
        return self._request_scope.exit_stack

    async def is_disconnected(self) -> bool:
        """Whether the client is known to have gone away; never blocks, never reads the body."""
        request_scope: RequestScope | None = self.scope.get(SCOPE_KEY)
        if request_scope is None:
            return False
        if not request_scope.receiver.disconnected:
            # Make sure someone is watching, then let it look.
            request_scope.watch()
            await trio.lowlevel.checkpoint()
        return request_scope.receiver.disconnected

    async def wait_disconnected(self) -> None:
        """Return once the client has gone away."""
        await self._request_scope.wait_disconnected()

    async def send_push_promise(self, path: str) -> None:
        """Ask the server to push ``path`` (HTTP/2 only; ignored where unsupported)."""
        if "http.response.push" in self.scope.get("extensions", {}):
            raw_headers: list[tuple[bytes, bytes]] = []
            for name in (
                "accept",
                "accept-encoding",
                "accept-language",
                "cache-control",
                "user-agent",
            ):
                for value in self.headers.getlist(name):
                    raw_headers.append((name.encode("latin-1"), value.encode("latin-1")))
            await self._send({"type": "http.response.push", "path": path, "headers": raw_headers})


class _Missing:
    """Marks a cached value that has not been computed (``None`` is a valid JSON value)."""

    __slots__ = ()


_MISSING: Any = _Missing()
