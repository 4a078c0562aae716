"""``FileResponse``: a file on disk, streamed in chunks, with validators and byte ranges.

The file is read with trio's async file I/O, one chunk at a time, so a large download never sits
in memory; a file no larger than one chunk is opened, read and closed in a single worker-thread
call. ``Range`` requests get a 206 (one range) or a ``multipart/byteranges`` 206 (several);
a malformed or unsatisfiable ``Range`` gets a 416. A file that is missing or unreadable when the
response is sent gets a 404.

``toolkit.responses`` re-exports ``FileResponse``; import it from there.
"""

from __future__ import annotations

import io
import os
import re
import stat
import unicodedata
from collections.abc import Mapping
from email.utils import formatdate, parsedate_to_datetime
from mimetypes import guess_type
from secrets import token_hex
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import trio

from toolkit.background import BackgroundTask
from toolkit.datastructures import Headers, MutableHeaders
from toolkit.responses import PlainTextResponse, Response
from toolkit.types import Receive, Scope, Send

if TYPE_CHECKING:
    from trio._file_io import AsyncIOWrapper

__all__ = ["FileResponse", "RangeNotSatisfiable", "content_disposition", "parse_range_header"]

PathLike = str | os.PathLike[str]

# A filename that can go into a quoted ``filename=`` parameter as is (RFC 6266 section 4.3:
# printable ASCII; no quote or backslash, which need escaping, and no ``%``, which some
# browsers decode).
_PLAIN_FILENAME = re.compile(r"[\x20-\x21\x23-\x24\x26-\x5b\x5d-\x7e]*")
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
# Digits beyond this many are bigger than any file; int() would also refuse very long strings.
_MAX_DIGITS = 18


class RangeNotSatisfiable(Exception):
    """A ``Range`` header that is malformed or asks only for bytes the file does not have."""


def content_disposition(disposition_type: str, filename: str) -> str:
    """A ``Content-Disposition`` value naming ``filename`` (RFC 6266).

    A plain ASCII name is sent quoted; any other gets an ASCII fallback for old clients plus
    ``filename*`` with the exact name, UTF-8 and percent-encoded. Control characters never reach
    the header as they are, so a filename cannot inject headers.
    """
    if _PLAIN_FILENAME.fullmatch(filename):
        return f'{disposition_type}; filename="{filename}"'
    fallback = "".join(
        char if _PLAIN_FILENAME.fullmatch(char) else "_"
        for char in unicodedata.normalize("NFKD", filename)
        if not unicodedata.combining(char)
    )
    encoded = quote(filename, safe="")
    return f"{disposition_type}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _to_int(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


def parse_range_header(value: str, size: int, max_ranges: int) -> list[tuple[int, int]] | None:
    """The byte ranges a ``Range`` header asks of a ``size``-byte file (RFC 9110 section 14).

    Returns ``(start, stop)`` pairs, sorted, with overlapping and adjacent ranges merged (sort
    and sweep: no quadratic blow-up), ranges past the end dropped and ends clamped to the file.
    Returns None when the header is to be ignored and the whole file sent: a unit other than
    ``bytes`` (which RFC 9110 says to ignore) or more than ``max_ranges`` ranges. Raises
    ``RangeNotSatisfiable`` for a malformed header or one with no satisfiable range.
    """
    unit, equals, specs = value.partition("=")
    if not equals:
        raise RangeNotSatisfiable("Malformed Range header")
    if unit.strip(" \t").lower() != "bytes":
        return None
    if specs.count(",") >= max_ranges:
        return None
    ranges: list[tuple[int, int]] = []
    seen_spec = False
    for spec in specs.split(","):
        spec = spec.strip(" \t")
        if not spec:
            continue
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None or match.group() == "-":
            raise RangeNotSatisfiable("Malformed Range header")
        seen_spec = True
        first, last = match.groups()
        if first:
            start = _to_int(first)
            if last and _to_int(last) < start:
                raise RangeNotSatisfiable("Malformed Range header: a range ends before it starts")
            if start < size:
                stop = min(_to_int(last) + 1, size) if last else size
                ranges.append((start, stop))
        else:
            suffix = _to_int(last)
            if suffix > 0 and size > 0:
                ranges.append((max(size - suffix, 0), size))
    if not seen_spec:
        raise RangeNotSatisfiable("Malformed Range header: no range given")
    if not ranges:
        raise RangeNotSatisfiable("Range not satisfiable")
    ranges.sort()
    merged = [ranges[0]]
    for start, stop in ranges[1:]:
        last_start, last_stop = merged[-1]
        if start <= last_stop:
            if stop > last_stop:
                merged[-1] = (last_start, stop)
        else:
            merged.append((start, stop))
    return merged


def _open_regular_file(path: PathLike, read_up_to: int) -> tuple[io.FileIO | bytes, os.stat_result]:
    """Open ``path`` (a regular file, else ``OSError``); read it whole if it is ``read_up_to``
    bytes or smaller. Runs in a worker thread.

    ``O_NONBLOCK`` keeps a FIFO from blocking the open; it changes nothing for regular files.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        stat_result = os.fstat(fd)
        if not stat.S_ISREG(stat_result.st_mode):
            raise IsADirectoryError(f"Not a regular file: {path!s}")
        file = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    if stat_result.st_size > read_up_to:
        return file, stat_result
    with file:
        return file.read(read_up_to + 1), stat_result


class FileResponse(Response):
    """The file at ``path``, streamed ``chunk_size`` bytes at a time.

    The content type is guessed from ``filename`` or ``path``; ``filename`` also sets
    ``Content-Disposition`` (``content_disposition_type`` is ``attachment`` or ``inline``).
    ``Content-Length``, ``Last-Modified`` and a strong ``ETag`` come from ``stat_result`` (or from
    the opened file when it is not given). ``Range`` and ``If-Range`` are honoured on GET and HEAD
    of a 200 response; at most ``max_ranges`` ranges are served, more and the whole file is sent.
    """

    chunk_size = 64 * 1024
    max_ranges = 100

    def __init__(
        self,
        path: PathLike,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
        filename: str | None = None,
        stat_result: os.stat_result | None = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        self.path = path
        self.status_code = status_code
        self.filename = filename
        if media_type is None:
            media_type = guess_type(filename or path)[0] or "application/octet-stream"
        self.media_type = media_type
        self.background = background
        self.init_headers(headers)
        self.headers.setdefault("accept-ranges", "bytes")
        if filename is not None:
            self.headers.setdefault(
                "content-disposition", content_disposition(content_disposition_type, filename)
            )
        self.stat_result = stat_result
        if stat_result is not None:
            self.set_stat_headers(stat_result)

    def set_stat_headers(self, stat_result: os.stat_result) -> None:
        """Set ``Content-Length``, ``Last-Modified`` and ``ETag`` from the file's metadata."""
        headers = self.headers
        headers.setdefault("content-length", str(stat_result.st_size))
        headers.setdefault("last-modified", formatdate(stat_result.st_mtime, usegmt=True))
        headers.setdefault("etag", f'"{stat_result.st_mtime_ns:x}-{stat_result.st_size:x}"')

    async def send_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the file, the requested ranges of it, a 416, or a 404 if it cannot be opened."""
        prefix = "websocket." if scope["type"] == "websocket" else ""
        method = scope.get("method")
        send_body = method != "HEAD"
        try:
            opened, fresh_stat = await trio.to_thread.run_sync(
                _open_regular_file, self.path, self.chunk_size if send_body else -1
            )
        except (OSError, ValueError):
            # Gone, unreadable, not a regular file, or a path the OS rejects (a NUL byte).
            await PlainTextResponse("Not Found", status_code=404).send_response(
                scope, receive, send
            )
            return
        stat_result = self.stat_result
        if stat_result is None:
            stat_result = fresh_stat
            self.set_stat_headers(fresh_stat)
        size = stat_result.st_size
        if isinstance(opened, bytes):
            file = None
            if len(opened) != size:
                # Changed since ``stat_result`` was taken: send what was actually read.
                size = len(opened)
                self.headers["content-length"] = str(size)
        else:
            file = trio.wrap_file(opened)
        try:
            ranges = self._requested_ranges(scope, method, size)
        except RangeNotSatisfiable as exc:
            if file is not None:
                await file.aclose()
            unsatisfiable = PlainTextResponse(
                str(exc),
                status_code=416,
                headers={"content-range": f"bytes */{size}"},
            )
            await unsatisfiable.send_response(scope, receive, send)
            return
        if file is None:
            assert isinstance(opened, bytes)
            await self._send_bytes(opened, ranges, size, send, prefix)
            return
        async with file:
            if ranges is None:
                await self._start(send, prefix, self.status_code, self.raw_headers)
                if send_body:
                    await self._send_span(file, 0, size, send, prefix, last=True)
                else:
                    await send({"type": prefix + "http.response.body", "body": b""})
            elif len(ranges) == 1:
                start, stop = ranges[0]
                headers = self._single_range_headers(start, stop, size)
                await self._start(send, prefix, 206, headers)
                if send_body:
                    await self._send_span(file, start, stop, send, prefix, last=True)
                else:
                    await send({"type": prefix + "http.response.body", "body": b""})
            else:
                await self._send_multipart(file, ranges, size, send, prefix, send_body)

    def _requested_ranges(
        self, scope: Scope, method: str | None, size: int
    ) -> list[tuple[int, int]] | None:
        """The ranges to send, or None for the whole file (no usable ``Range``)."""
        if self.status_code != 200 or method not in ("GET", "HEAD"):
            return None
        request_headers = Headers(scope=scope)
        range_header = request_headers.get("range")
        if range_header is None:
            return None
        if_range = request_headers.get("if-range")
        if if_range is not None and not self._if_range_matches(if_range):
            return None
        return parse_range_header(range_header, size, self.max_ranges)

    def _if_range_matches(self, if_range: str) -> bool:
        """Whether ``If-Range`` names the current file: its strong ETag or exact modified date."""
        if_range = if_range.strip()
        if if_range.startswith(('"', "W/")):
            return if_range == self.headers.get("etag")
        last_modified = self.headers.get("last-modified")
        if last_modified is None:
            return False
        try:
            return parsedate_to_datetime(if_range) == parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            return False

    def _single_range_headers(self, start: int, stop: int, size: int) -> list[tuple[bytes, bytes]]:
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers["content-range"] = f"bytes {start}-{stop - 1}/{size}"
        headers["content-length"] = str(stop - start)
        return headers.raw

    def _multipart_layout(
        self, ranges: list[tuple[int, int]], size: int
    ) -> tuple[list[tuple[bytes, bytes]], list[bytes], bytes]:
        """Headers, each part's preamble and the closing delimiter of a byteranges body."""
        boundary = token_hex(13)
        part_type = self.headers.get("content-type", "application/octet-stream")
        preambles = [
            (
                f"--{boundary}\r\nContent-Type: {part_type}\r\n"
                f"Content-Range: bytes {start}-{stop - 1}/{size}\r\n\r\n"
            ).encode("latin-1")
            for start, stop in ranges
        ]
        closing = f"--{boundary}--\r\n".encode("latin-1")
        # Each part is its preamble, its bytes and a CRLF ending the part.
        length = sum(
            len(p) + stop - start + 2 for p, (start, stop) in zip(preambles, ranges, strict=True)
        )
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers["content-type"] = f"multipart/byteranges; boundary={boundary}"
        headers["content-length"] = str(length + len(closing))
        return headers.raw, preambles, closing

    async def _send_multipart(
        self,
        file: AsyncIOWrapper[io.FileIO],
        ranges: list[tuple[int, int]],
        size: int,
        send: Send,
        prefix: str,
        send_body: bool,
    ) -> None:
        headers, preambles, closing = self._multipart_layout(ranges, size)
        await self._start(send, prefix, 206, headers)
        body_type = prefix + "http.response.body"
        if not send_body:
            await send({"type": body_type, "body": b""})
            return
        for preamble, (start, stop) in zip(preambles, ranges, strict=True):
            await send({"type": body_type, "body": preamble, "more_body": True})
            await self._send_span(file, start, stop, send, prefix, last=False)
            await send({"type": body_type, "body": b"\r\n", "more_body": True})
        await send({"type": body_type, "body": closing})

    async def _send_bytes(
        self,
        data: bytes,
        ranges: list[tuple[int, int]] | None,
        size: int,
        send: Send,
        prefix: str,
    ) -> None:
        """Send a file read whole (one chunk or less): all of it, one range, or several."""
        body_type = prefix + "http.response.body"
        if ranges is None:
            await self._start(send, prefix, self.status_code, self.raw_headers)
            await send({"type": body_type, "body": data})
        elif len(ranges) == 1:
            start, stop = ranges[0]
            await self._start(send, prefix, 206, self._single_range_headers(start, stop, size))
            await send({"type": body_type, "body": data[start:stop]})
        else:
            headers, preambles, closing = self._multipart_layout(ranges, size)
            await self._start(send, prefix, 206, headers)
            parts = [
                piece
                for preamble, (start, stop) in zip(preambles, ranges, strict=True)
                for piece in (preamble, data[start:stop], b"\r\n")
            ]
            await send({"type": body_type, "body": b"".join([*parts, closing])})

    @staticmethod
    async def _start(send: Send, prefix: str, status: int, headers: Any) -> None:
        await send({"type": prefix + "http.response.start", "status": status, "headers": headers})

    async def _send_span(
        self,
        file: AsyncIOWrapper[io.FileIO],
        start: int,
        stop: int,
        send: Send,
        prefix: str,
        *,
        last: bool,
    ) -> None:
        """Send bytes ``start:stop`` of ``file``; ``last`` marks the end of the response body."""
        body_type = prefix + "http.response.body"
        if start:
            await file.seek(start)
        remaining = stop - start
        chunk_size = self.chunk_size
        if not remaining and last:
            await send({"type": body_type, "body": b""})
        while remaining:
            chunk = await file.read(min(chunk_size, remaining))
            if not chunk:
                # The file shrank after its length was sent: the response cannot be completed.
                raise RuntimeError(f"File at path {self.path!s} is shorter than expected.")
            remaining -= len(chunk)
            more_body = bool(remaining) or not last
            await send({"type": body_type, "body": chunk, "more_body": more_body})
