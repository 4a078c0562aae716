"""The outgoing side: response classes that know how to send themselves over ASGI."""

from __future__ import annotations

import http.cookies
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from contextlib import aclosing
from datetime import datetime
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import quote

from toolkit.background import BackgroundTask
from toolkit.concurrency import app_thread_limiter, iterate_in_thread
from toolkit.datastructures import URL, MutableHeaders
from toolkit.types import Receive, Scope, Send

Content = str | bytes | memoryview


class Response:
    """A complete response: status, headers and a body known up front.

    ``__call__`` sends it and then runs ``background``; toolkit's router sends
    it with ``send_response`` and runs the background tasks itself, after the
    request scope has closed (see docs/concurrency.md).
    """

    media_type: str | None = None
    charset = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = background
        self.body = self.render(content)
        self.init_headers(headers)

    def render(self, content: Any) -> bytes | memoryview:
        """Turn ``content`` into the body bytes."""
        if content is None:
            return b""
        if isinstance(content, bytes | memoryview):
            return content
        encoded: bytes = content.encode(self.charset)
        return encoded

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        """Build ``raw_headers``, adding content-length and content-type unless given."""
        if headers is None:
            raw_headers: list[tuple[bytes, bytes]] = []
            populate_content_length = populate_content_type = True
        else:
            raw_headers = [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
            ]
            keys = {name for name, _ in raw_headers}
            populate_content_length = b"content-length" not in keys
            populate_content_type = b"content-type" not in keys

        body = getattr(self, "body", None)
        if (
            body is not None
            and populate_content_length
            and not (self.status_code < 200 or self.status_code in (204, 304))
        ):
            raw_headers.append((b"content-length", str(len(body)).encode("latin-1")))

        content_type = self.media_type
        if content_type is not None and populate_content_type:
            if content_type.startswith("text/") and "charset=" not in content_type.lower():
                content_type += "; charset=" + self.charset
            raw_headers.append((b"content-type", content_type.encode("latin-1")))

        self.raw_headers = raw_headers

    @property
    def headers(self) -> MutableHeaders:
        """The headers as a mutable view over ``raw_headers``."""
        if not hasattr(self, "_headers"):
            self._headers = MutableHeaders(raw=self.raw_headers)
        return self._headers

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Add a ``Set-Cookie`` header."""
        cookie: http.cookies.BaseCookie[str] = http.cookies.SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = max_age
        if expires is not None:
            if isinstance(expires, datetime):
                morsel["expires"] = format_datetime(expires, usegmt=True)
            else:
                morsel["expires"] = expires
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            if samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError("samesite must be either 'strict', 'lax' or 'none'")
            morsel["samesite"] = samesite
        cookie_val = cookie.output(header="").strip()
        if partitioned:
            # Written by hand: http.cookies only knows the attribute from Python 3.14.
            cookie_val += "; Partitioned"
        self.raw_headers.append((b"set-cookie", cookie_val.encode("latin-1")))

    def delete_cookie(
        self,
        key: str,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Add a ``Set-Cookie`` header that expires the cookie now."""
        self.set_cookie(
            key,
            max_age=0,
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )

    async def send_start(self, scope: Scope, send: Send) -> str:
        """Send the status and headers; return the message prefix for the body
        (``"websocket."`` for a WebSocket denial response, else ``""``)."""
        prefix = "websocket." if scope["type"] == "websocket" else ""
        await send(
            {
                "type": prefix + "http.response.start",
                "status": self.status_code,
                "headers": self.raw_headers,
            }
        )
        return prefix

    async def send_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the status line, headers and body (no background tasks)."""
        prefix = await self.send_start(scope, send)
        body = b"" if scope.get("method") == "HEAD" else self.body
        await send({"type": prefix + "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.send_response(scope, receive, send)
        if self.background is not None:
            await self.background()


class HTMLResponse(Response):
    media_type = "text/html"


class PlainTextResponse(Response):
    media_type = "text/plain"


class JSONResponse(Response):
    """JSON of ``content``: compact, UTF-8, no NaN (invalid in JSON)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode("utf-8")


class RedirectResponse(Response):
    """A redirect to ``url`` (307 by default, so the method and body are kept)."""

    def __init__(
        self,
        url: str | URL,
        status_code: int = 307,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(
            content=b"", status_code=status_code, headers=headers, background=background
        )
        self.headers["location"] = quote(str(url), safe=":/%#?=@[]!$&'()*+,;")


ContentStream = AsyncIterable[Content] | Iterable[Content]


class StreamingResponse(Response):
    """A body produced by an iterator, sent chunk by chunk as it is produced.

    Async iterables are iterated in the request's task, under ``aclosing`` so a
    generator's ``finally`` runs when the stream ends early; sync iterables are
    iterated in a worker thread under the app's thread limiter.
    """

    body_iterator: AsyncIterable[Content]

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self._content = content
        self.status_code = status_code
        self.media_type = self.media_type if media_type is None else media_type
        self.background = background
        self.init_headers(headers)

    def _iterate(self, scope: Scope) -> AsyncIterable[Content]:
        if isinstance(self._content, AsyncIterable):
            return self._content
        return iterate_in_thread(self._content, limiter=app_thread_limiter(scope))

    async def send_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        prefix = await self.send_start(scope, send)
        chunks = aiter(self._iterate(scope))
        if hasattr(chunks, "aclose"):
            # Close the generator however the stream ends, so its ``finally`` runs now.
            async with aclosing(chunks):  # type: ignore[type-var]
                await self._send_chunks(scope, chunks, send, prefix)
        else:
            await self._send_chunks(scope, chunks, send, prefix)
        await send({"type": prefix + "http.response.body", "body": b""})

    async def _send_chunks(
        self, scope: Scope, chunks: AsyncIterator[Content], send: Send, prefix: str
    ) -> None:
        if scope.get("method") == "HEAD":
            return
        body_type = prefix + "http.response.body"
        async for chunk in chunks:
            if isinstance(chunk, str):
                chunk = chunk.encode(self.charset)
            await send({"type": body_type, "body": chunk, "more_body": True})


# FileResponse lives in its own module (it needs Response defined first); import it from here.
from toolkit.fileresponse import FileResponse  # noqa: E402

__all__ = [
    "FileResponse",
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
]
