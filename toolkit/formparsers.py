"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data``.

Both parsers are streaming (python-multipart): the body is fed in as it arrives and nothing but
the text fields is kept in memory. Uploaded files go to a ``SpooledTemporaryFile`` that stays in
memory up to ``MultiPartParser.spool_max_size`` bytes and then moves to an already-unlinked
temporary file on disk; writes that may touch the disk run in a worker thread.

Limits (docs/forms.md): more than ``max_fields`` fields or ``max_files`` files is a 400; a text
field over ``max_part_size`` bytes is a 413; a malformed or truncated body is a 400. Whatever
stops a parse (a limit, bad data, a disconnect, a cancellation) closes the files already made.
Filenames are kept exactly as sent and never used as paths.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator, Awaitable, Generator
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

from toolkit.datastructures import FormData, Headers, UploadFile
from toolkit.exceptions import HTTPException

try:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, QuerystringParser
except ImportError as _import_error:  # pragma: no cover - an optional dependency
    raise ImportError(
        "Form parsing needs python-multipart: pip install 'toolkit[full]'"
    ) from _import_error

__all__ = [
    "AwaitableForm",
    "FormParser",
    "MultiPartException",
    "MultiPartParser",
    "parse_form",
]

DEFAULT_MAX_FILES = 1000
DEFAULT_MAX_FIELDS = 1000
DEFAULT_MAX_PART_SIZE = 1024 * 1024

# One ``; name=value`` parameter of a Content-Disposition header; the value is a quoted string
# (backslash escapes allowed) or a bare token.
_DISPOSITION_PARAM = re.compile(
    r';\s*([^\s=;"]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;"]*))', re.DOTALL
)


class MultiPartException(HTTPException):
    """A form body toolkit refuses: a 400 (bad data, too many parts) or a 413 (a part too big)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(status_code=status_code, detail=message)
        self.message = message


def _decode(raw: bytes | bytearray, charset: str) -> str:
    """``raw`` in ``charset``, or latin-1 (which never fails) if it is not valid there."""
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1")


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split a header like ``form-data; name="a"; filename="b"`` into its type and parameters.

    Quoted values lose their quotes and only ``\\\\`` and ``\\"`` are unescaped (browsers send
    other backslashes as they are). Extended ``name*=`` parameters are ignored, as RFC 7578
    section 4.2 requires; the first of a repeated parameter wins.
    """
    kind, _, _ = value.partition(";")
    params: dict[str, str] = {}
    for match in _DISPOSITION_PARAM.finditer(value, len(kind)):
        key, quoted, token = match.groups()
        key = key.lower()
        if "*" in key or key in params:
            continue
        if quoted is not None:
            params[key] = quoted.replace("\\\\", "\\").replace('\\"', '"')
        else:
            params[key] = token.strip()
    return kind.strip().lower(), params


def _charset(headers: Headers) -> str:
    """The form's charset (from the ``Content-Type`` parameter), UTF-8 by default."""
    _, params = _header_params(headers.get("content-type", ""))
    try:
        return codecs.lookup(params.get("charset", "utf-8")).name
    except LookupError:
        return "latin-1"


class FormParser:
    """Parses ``application/x-www-form-urlencoded``, at most ``max_fields`` fields of at most
    ``max_part_size`` bytes each (name and value together, as sent)."""

    def __init__(
        self,
        headers: Headers,
        stream: AsyncIterator[bytes],
        *,
        max_fields: int | float = DEFAULT_MAX_FIELDS,
        max_part_size: int = DEFAULT_MAX_PART_SIZE,
    ) -> None:
        self.headers = headers
        self.stream = stream
        self.max_fields = max_fields
        self.max_part_size = max_part_size
        self._charset = _charset(headers)
        self._name = bytearray()
        self._value = bytearray()
        self._fields = 0
        self._items: list[tuple[str, str | UploadFile]] = []

    def _check_size(self, added: int) -> None:
        if len(self._name) + len(self._value) + added > self.max_part_size:
            raise MultiPartException(
                f"A form field is larger than the limit of {self.max_part_size} bytes.", 413
            )

    def on_field_start(self) -> None:
        self._fields += 1
        if self._fields > self.max_fields:
            raise MultiPartException(f"Too many fields: the limit is {self.max_fields}.")
        self._name = bytearray()
        self._value = bytearray()

    def on_field_name(self, data: bytes, start: int, end: int) -> None:
        self._check_size(end - start)
        self._name += data[start:end]

    def on_field_data(self, data: bytes, start: int, end: int) -> None:
        self._check_size(end - start)
        self._value += data[start:end]

    def on_field_end(self) -> None:
        self._items.append((self._unquote(self._name), self._unquote(self._value)))

    def _unquote(self, raw: bytearray) -> str:
        return _decode(unquote_to_bytes(bytes(raw).replace(b"+", b" ")), self._charset)

    async def parse(self) -> FormData:
        """Read the whole stream and return its fields."""
        parser = QuerystringParser(
            {
                "on_field_start": self.on_field_start,
                "on_field_name": self.on_field_name,
                "on_field_data": self.on_field_data,
                "on_field_end": self.on_field_end,
            }
        )
        try:
            async for chunk in self.stream:
                parser.write(chunk)
            parser.finalize()
        except FormParserError as exc:
            raise MultiPartException("Malformed form body.") from exc
        return FormData(self._items)


@dataclass
class _Part:
    """The part being parsed: its headers so far, then its text or its file."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    name: str = ""
    data: bytearray = field(default_factory=bytearray)
    upload: UploadFile | None = None


class MultiPartParser:
    """Parses ``multipart/form-data`` with at most ``max_files`` files, ``max_fields`` text
    fields and ``max_part_size`` bytes per text field; files are spooled (see the module)."""

    spool_max_size = 1024 * 1024
    """Bytes an uploaded file keeps in memory before it moves to a temporary file on disk."""

    def __init__(
        self,
        headers: Headers,
        stream: AsyncIterator[bytes],
        *,
        max_files: int | float = DEFAULT_MAX_FILES,
        max_fields: int | float = DEFAULT_MAX_FIELDS,
        max_part_size: int = DEFAULT_MAX_PART_SIZE,
    ) -> None:
        self.headers = headers
        self.stream = stream
        self.max_files = max_files
        self.max_fields = max_fields
        self.max_part_size = max_part_size
        self.items: list[tuple[str, str | UploadFile]] = []
        self._charset = _charset(headers)
        self._part = _Part()
        self._files = 0
        self._fields = 0
        self._complete = False
        self._uploads: list[UploadFile] = []
        # File data and finished files from the last chunk, handled (awaiting) after it.
        self._pending_data: list[tuple[UploadFile, list[bytes]]] = []
        self._pending_rewind: list[UploadFile] = []

    def on_part_begin(self) -> None:
        self._part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]

    def on_header_end(self) -> None:
        part = self._part
        part.headers.append((bytes(part.header_name).lower(), bytes(part.header_value)))
        part.header_name = bytearray()
        part.header_value = bytearray()

    def on_headers_finished(self) -> None:
        part = self._part
        disposition = next((v for k, v in part.headers if k == b"content-disposition"), None)
        if disposition is None:
            raise MultiPartException("A form part has no Content-Disposition header.")
        _, params = _header_params(_decode(disposition, self._charset))
        if "name" not in params:
            raise MultiPartException('A form part\'s Content-Disposition has no "name".')
        part.name = params["name"]
        if "filename" in params:
            self._files += 1
            if self._files > self.max_files:
                raise MultiPartException(f"Too many files: the limit is {self.max_files}.")
            part.upload = UploadFile(
                # Closed by the form (or by ``parse`` on failure), not by a ``with``.
                file=SpooledTemporaryFile(max_size=self.spool_max_size),  # type: ignore[arg-type]  # noqa: SIM115
                size=0,
                filename=params["filename"],
                headers=Headers(raw=part.headers),
            )
            self._uploads.append(part.upload)
        else:
            self._fields += 1
            if self._fields > self.max_fields:
                raise MultiPartException(f"Too many fields: the limit is {self.max_fields}.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.upload is None:
            if len(part.data) + end - start > self.max_part_size:
                raise MultiPartException(
                    f"A form field is larger than the limit of {self.max_part_size} bytes.", 413
                )
            part.data += data[start:end]
        elif self._pending_data and self._pending_data[-1][0] is part.upload:
            self._pending_data[-1][1].append(data[start:end])
        else:
            self._pending_data.append((part.upload, [data[start:end]]))

    def on_part_end(self) -> None:
        part = self._part
        if part.upload is None:
            self.items.append((part.name, _decode(part.data, self._charset)))
        else:
            self.items.append((part.name, part.upload))
            self._pending_rewind.append(part.upload)

    def on_end(self) -> None:
        self._complete = True

    async def _write_pending(self) -> None:
        """Write the file data of the last chunk, then rewind the files that ended in it.

        While a file still fits in memory, writing to the spooled file cannot block, so it is
        done here; a write that may move it to disk, or lands on disk, runs in a thread.
        """
        limit = self.spool_max_size
        for upload, pieces in self._pending_data:
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            assert upload.size is not None
            if upload.size + len(data) <= limit:
                upload.file.write(data)
                upload.size += len(data)
            else:
                await upload.write(data)
        self._pending_data.clear()
        for upload in self._pending_rewind:
            assert upload.size is not None
            if upload.size <= limit:
                upload.file.seek(0)
            else:
                await upload.seek(0)
        self._pending_rewind.clear()

    def _boundary(self) -> bytes:
        _, params = _header_params(self.headers.get("content-type", ""))
        boundary = params.get("boundary")
        if not boundary:
            raise MultiPartException("The multipart Content-Type has no boundary.")
        try:
            return boundary.encode("latin-1")
        except UnicodeEncodeError:
            raise MultiPartException("The multipart boundary is not valid.") from None

    async def parse(self) -> FormData:
        """Read the whole stream and return its fields and files.

        On any failure the files made so far are closed before the error propagates.
        """
        try:
            parser = MultipartParser(
                self._boundary(),
                {
                    "on_part_begin": self.on_part_begin,
                    "on_part_data": self.on_part_data,
                    "on_part_end": self.on_part_end,
                    "on_header_field": self.on_header_field,
                    "on_header_value": self.on_header_value,
                    "on_header_end": self.on_header_end,
                    "on_headers_finished": self.on_headers_finished,
                    "on_end": self.on_end,
                },
            )
            async for chunk in self.stream:
                parser.write(chunk)
                await self._write_pending()
            parser.finalize()
            if not self._complete:
                raise MultiPartException("The multipart body is truncated.")
        except BaseException as exc:
            # Closing an unlinked temporary file is quick and cannot block: done here, so it
            # happens even under cancellation.
            for upload in self._uploads:
                upload.file.close()
            if isinstance(exc, FormParserError):
                raise MultiPartException("Malformed multipart body.") from exc
            raise
        return FormData(self.items)


async def parse_form(
    headers: Headers,
    stream: AsyncIterator[bytes],
    *,
    max_files: int | float = DEFAULT_MAX_FILES,
    max_fields: int | float = DEFAULT_MAX_FIELDS,
    max_part_size: int = DEFAULT_MAX_PART_SIZE,
) -> FormData:
    """The form in ``stream``, by its ``Content-Type``; any other content type is an empty form."""
    content_type, _ = _header_params(headers.get("content-type", ""))
    if content_type == "multipart/form-data":
        parser: FormParser | MultiPartParser = MultiPartParser(
            headers,
            stream,
            max_files=max_files,
            max_fields=max_fields,
            max_part_size=max_part_size,
        )
    elif content_type == "application/x-www-form-urlencoded":
        parser = FormParser(headers, stream, max_fields=max_fields, max_part_size=max_part_size)
    else:
        return FormData()
    close = getattr(stream, "aclose", None)
    try:
        return await parser.parse()
    finally:
        # A body generator left mid-way (a limit, bad data) is closed now, not when collected.
        if close is not None:
            await close()


class AwaitableForm:
    """What ``request.form()`` returns: ``await`` it for the form, or use ``async with`` to
    also close the form's uploaded files when the block ends."""

    __slots__ = ("_form", "_parse")

    def __init__(self, parse: Awaitable[FormData]) -> None:
        self._parse = parse
        self._form: FormData | None = None

    def __await__(self) -> Generator[Any, None, FormData]:
        return self._parse.__await__()

    async def __aenter__(self) -> FormData:
        self._form = await self._parse
        return self._form

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._form is not None:
            await self._form.close()
