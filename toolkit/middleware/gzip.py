"""``GZipMiddleware``: gzip response bodies for clients that accept it.

The body is compressed as it is sent, one zlib stream per response: a
streamed body is flushed after every chunk (``Z_SYNC_FLUSH``), so the client
can decode each chunk as soon as it arrives, and nothing is buffered. Left
alone: bodies under ``minimum_size`` (sent whole), responses that already have
a ``Content-Encoding``, partial content (206), and the content types in
``exclude_content_types`` (already compressed media, and ``text/event-stream``,
which must reach the client event by event). A chunk of ``thread_minimum_size``
bytes or more is compressed in a worker thread, so that it does not stall the
other requests.
"""

from __future__ import annotations

import zlib

from toolkit.concurrency import app_thread_limiter, run_in_thread
from toolkit.datastructures import Headers, MutableHeaders
from toolkit.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_EXCLUDED_CONTENT_TYPES = (
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/grpc",
    "audio/*",
    "font/woff",
    "font/woff2",
    "image/avif",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/event-stream",
    "video/*",
)


class GZipMiddleware:
    """Compress responses of at least ``minimum_size`` bytes with gzip at ``compresslevel``.

    Responses big enough to be compressed get ``Vary: Accept-Encoding`` whether
    or not this client accepts gzip, so that caches keep the two apart.
    WebSocket and lifespan scopes pass through.
    """

    def __init__(
        self,
        app: ASGIApp,
        minimum_size: int = 500,
        compresslevel: int = 9,
        thread_minimum_size: int = 128 * 1024,
        *,
        exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.thread_minimum_size = thread_minimum_size
        self.exclude_content_types = frozenset(
            _media_type(value) for value in exclude_content_types
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accepts = accepts_gzip(Headers(scope=scope).get("accept-encoding"))
        responder = _Responder(self, scope, send, accepts)
        await self.app(scope, receive, responder.send)

    def is_excluded(self, content_type: str) -> bool:
        """Whether a response of ``content_type`` is left uncompressed."""
        media_type = _media_type(content_type)
        excluded = self.exclude_content_types
        return (
            media_type in excluded
            or media_type.partition("/")[0] + "/*" in excluded
            or (media_type.startswith("application/grpc+") and "application/grpc" in excluded)
        )


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip (an explicit ``gzip;q=0`` refuses it)."""
    if not accept_encoding:
        return False
    gzip_q: float | None = None
    any_q: float | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            gzip_q = _quality(params)
        elif coding == "*":
            any_q = _quality(params)
    quality = gzip_q if gzip_q is not None else any_q
    return quality is not None and quality > 0


def _quality(params: str) -> float:
    name, _, value = params.partition("=")
    if name.strip().lower() != "q":
        return 1.0
    try:
        return float(value)
    except ValueError:
        return 0.0  # unreadable: do not risk an encoding the client may not want


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


class _Responder:
    """One response on its way out: holds the start until the first body chunk decides."""

    __slots__ = ("_accepts", "_compressor", "_limiter", "_middleware", "_send", "_start", "mode")

    def __init__(self, middleware: GZipMiddleware, scope: Scope, send: Send, accepts: bool) -> None:
        self._middleware = middleware
        self._send = send
        self._accepts = accepts
        self._limiter = app_thread_limiter(scope)
        self._start: Message | None = None
        self._compressor: zlib._Compress | None = None
        self.mode = "start"  # then "hold", "identity" or "gzip"

    async def send(self, message: Message) -> None:
        mode = self.mode
        message_type = message["type"]
        if mode == "gzip" and message_type == "http.response.body":
            await self._send_compressed(message)
        elif mode == "hold":
            await self._decide(message)
        elif mode == "start" and message_type == "http.response.start":
            if self._leaves_alone(message):
                self.mode = "identity"
                await self._send(message)
            else:
                self.mode = "hold"
                self._start = message
        else:
            await self._send(message)

    def _leaves_alone(self, start: Message) -> bool:
        if start["status"] in (204, 206, 304):
            return True
        headers = Headers(scope=start)
        return "content-encoding" in headers or self._middleware.is_excluded(
            headers.get("content-type", "")
        )

    async def _decide(self, message: Message) -> None:
        """The first message after the start: compress, or send as it is."""
        start = self._start
        assert start is not None
        self._start = None
        if message["type"] != "http.response.body":
            self.mode = "identity"
            await self._send(start)
            await self._send(message)
            return
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if not more_body and len(body) < self._middleware.minimum_size:
            self.mode = "identity"
            await self._send(start)
            await self._send(message)
            return
        headers = MutableHeaders(scope=start)
        headers.add_vary_header("Accept-Encoding")
        if not self._accepts:
            self.mode = "identity"
            await self._send(start)
            await self._send(message)
            return
        self.mode = "gzip"
        self._compressor = zlib.compressobj(self._middleware.compresslevel, zlib.DEFLATED, 31)
        compressed = await self._compress(body, more_body)
        headers["Content-Encoding"] = "gzip"
        if more_body:
            del headers["Content-Length"]
        else:
            headers["Content-Length"] = str(len(compressed))
        etag = headers.get("etag")
        if etag is not None and not etag.startswith("W/"):
            # The bytes changed, so a strong validator no longer holds.
            headers["ETag"] = "W/" + etag
        await self._send(start)
        await self._send({**message, "body": compressed})

    async def _send_compressed(self, message: Message) -> None:
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if more_body and not body:
            await self._send(message)
            return
        await self._send({**message, "body": await self._compress(body, more_body)})

    async def _compress(self, body: bytes, more_body: bool) -> bytes:
        if len(body) >= self._middleware.thread_minimum_size:
            return await run_in_thread(self._compress_now, body, more_body, limiter=self._limiter)
        return self._compress_now(body, more_body)

    def _compress_now(self, body: bytes, more_body: bool) -> bytes:
        compressor = self._compressor
        assert compressor is not None
        flush_mode = zlib.Z_SYNC_FLUSH if more_body else zlib.Z_FINISH
        return compressor.compress(body) + compressor.flush(flush_mode)
