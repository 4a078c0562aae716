"""toolkit.formparsers and request.form(): urlencoded and multipart, limits, spooling, cleanup."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import Any

import pytest
import trio

from toolkit import formparsers
from toolkit.applications import App
from toolkit.datastructures import UploadFile
from toolkit.exceptions import HTTPException
from toolkit.formparsers import MultiPartException, MultiPartParser
from toolkit.requests import ClientDisconnect, Request
from toolkit.responses import JSONResponse
from toolkit.routing import Route
from toolkit.testclient import AsyncTestClient
from toolkit.types import Message

BOUNDARY = "b0undary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
URLENCODED = "application/x-www-form-urlencoded"


def part(
    name: str, data: bytes, filename: str | None = None, content_type: str | None = None
) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + data + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def request_for(
    body: bytes | Iterable[bytes], content_type: str = MULTIPART, *, then: str = "end"
) -> Request:
    """A request whose body arrives as the given chunks; ``then`` is what follows the last:
    ``end`` (the body is complete), ``disconnect`` or ``hang`` (nothing, ever)."""
    chunks = [body] if isinstance(body, bytes) else list(body)
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]
    if then == "end":
        messages.append({"type": "http.request", "body": b"", "more_body": False})
    elif then == "disconnect":
        messages.append({"type": "http.disconnect"})

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", content_type.encode("latin-1"))],
    }
    return Request(scope, receive)


@pytest.fixture
def spooled_files(monkeypatch: pytest.MonkeyPatch) -> list[SpooledTemporaryFile[bytes]]:
    """Every spooled file the multipart parser creates during the test."""
    created: list[SpooledTemporaryFile[bytes]] = []

    def spooled(*args: Any, **kwargs: Any) -> SpooledTemporaryFile[bytes]:
        file: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(*args, **kwargs)  # noqa: SIM115
        created.append(file)
        return file

    monkeypatch.setattr(formparsers, "SpooledTemporaryFile", spooled)
    return created


# ----------------------------------------------------------------------------- urlencoded


async def test_urlencoded_fields() -> None:
    body = (
        b"name=Ada+Lovelace&tag=a&tag=b&empty=&bare&utf8=%C3%A9t%C3%A9&raw=\xc3\xa9&sym=%26%3D%2B"
    )
    form = await request_for(body, URLENCODED).form()
    assert form.multi_items() == [
        ("name", "Ada Lovelace"),
        ("tag", "a"),
        ("tag", "b"),
        ("empty", ""),
        ("bare", ""),
        ("utf8", "été"),
        ("raw", "é"),
        ("sym", "&=+"),
    ]
    assert form.getlist("tag") == ["a", "b"]


async def test_urlencoded_in_tiny_chunks() -> None:
    body = b"a=1&bb=22&ccc=%33%33%33"
    form = await request_for([body[i : i + 1] for i in range(len(body))], URLENCODED).form()
    assert dict(form) == {"a": "1", "bb": "22", "ccc": "333"}


async def test_urlencoded_limits() -> None:
    with pytest.raises(MultiPartException) as too_many:
        await request_for(b"a=1&b=2&c=3", URLENCODED).form(max_fields=2)
    assert too_many.value.status_code == 400
    with pytest.raises(MultiPartException) as too_big:
        await request_for(b"a=" + b"x" * 100, URLENCODED).form(max_part_size=64)
    assert too_big.value.status_code == 413
    form = await request_for(b"a=1&b=2", URLENCODED).form(max_fields=2, max_part_size=3)
    assert dict(form) == {"a": "1", "b": "2"}


async def test_other_content_types_give_an_empty_form() -> None:
    assert len(await request_for(b'{"a": 1}', "application/json").form()) == 0
    assert len(await request_for(b"a=1", "text/plain").form()) == 0


async def test_form_is_parsed_once() -> None:
    request = request_for(b"a=1", URLENCODED)
    assert await request.form() is await request.form()


async def test_form_after_body() -> None:
    request = request_for([b"a=1&", b"b=2"], URLENCODED)
    assert await request.body() == b"a=1&b=2"
    assert dict(await request.form()) == {"a": "1", "b": "2"}


# ----------------------------------------------------------------------------- multipart


async def test_multipart_fields_and_files() -> None:
    body = multipart(
        part("title", "Für Elise".encode()),
        part("doc", b"file contents\r\nwith a CRLF", "notes.txt", "text/plain"),
        part("doc", b"\x00\x01binary", "data.bin"),
        part("empty", b"", ""),
    )
    form = await request_for(body).form()
    assert form["title"] == "Für Elise"
    first, second = form.getlist("doc")
    assert isinstance(first, UploadFile) and isinstance(second, UploadFile)
    assert (first.filename, first.content_type, first.size) == ("notes.txt", "text/plain", 26)
    assert first.headers["content-disposition"] == 'form-data; name="doc"; filename="notes.txt"'
    assert await first.read() == b"file contents\r\nwith a CRLF"
    assert (second.filename, second.content_type) == ("data.bin", None)
    assert await second.read() == b"\x00\x01binary"
    empty = form["empty"]
    assert isinstance(empty, UploadFile) and empty.filename == "" and empty.size == 0
    await form.close()


async def test_upload_file_write_seek_and_read() -> None:
    form = await request_for(multipart(part("f", b"abc", "a.txt"))).form()
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    await upload.seek(3)
    await upload.write(b"def")
    await upload.seek(1)
    assert await upload.read(2) == b"bc"
    assert await upload.read() == b"def"
    assert upload.size == 6
    await upload.close()
    assert upload.file.closed


@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
async def test_multipart_in_chunks_of_any_size(chunk_size: int) -> None:
    payload = bytes(range(256)) * 40 + f"\r\n--{BOUNDARY[:-1]}".encode()  # a near-boundary inside
    body = multipart(part("a", b"x" * 50), part("f", payload, "f.bin"), part("b", b"y"))
    chunks = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
    form = await request_for(chunks).form()
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert await upload.read() == payload
    assert (form["a"], form["b"]) == ("x" * 50, "y")


async def test_large_upload_is_spooled_to_disk(
    spooled_files: list[SpooledTemporaryFile[bytes]],
) -> None:
    big = bytes(range(256)) * (MultiPartParser.spool_max_size // 256 + 100)
    body = multipart(part("big", big, "big.bin"), part("small", b"tiny", "small.txt"))
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    form = await request_for(chunks).form()
    big_upload, small_upload = form["big"], form["small"]
    assert isinstance(big_upload, UploadFile) and isinstance(small_upload, UploadFile)
    assert spooled_files[0]._rolled and not spooled_files[1]._rolled
    assert big_upload.size == len(big)
    assert await big_upload.read() == big
    assert await small_upload.read() == b"tiny"
    await form.close()
    assert all(file.closed for file in spooled_files)


@pytest.mark.parametrize(
    "filename",
    ["../../etc/passwd", "/etc/passwd", "C:\\Windows\\win.ini", "résumé.pdf", "a;b=c.txt", ".."],
)
async def test_filenames_are_kept_as_sent(filename: str) -> None:
    form = await request_for(multipart(part("f", b"x", filename))).form()
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert upload.filename == filename


async def test_quoted_and_unquoted_disposition_parameters() -> None:
    head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=plain; "
        'filename="say \\"hi\\" \\\\ now.txt"; filename*=UTF-8\'\'ignored.txt\r\n\r\n'
    )
    body = head.encode() + b"x\r\n" + f"--{BOUNDARY}--\r\n".encode()
    form = await request_for(body).form()
    upload = form["plain"]
    assert isinstance(upload, UploadFile)
    assert upload.filename == 'say "hi" \\ now.txt'


async def test_charset_of_text_fields() -> None:
    body = multipart(part("word", "café".encode("latin-1")))
    form = await request_for(body, MULTIPART + "; charset=latin-1").form()
    assert form["word"] == "café"
    # Bytes that are not valid in the charset fall back to latin-1 rather than failing.
    form = await request_for(multipart(part("word", b"caf\xe9"))).form()
    assert form["word"] == "café"


# ----------------------------------------------------------------------------- limits and bad data


async def test_multipart_limits() -> None:
    three_files = multipart(*(part(f"f{i}", b"x", f"{i}.txt") for i in range(3)))
    three_fields = multipart(*(part(f"a{i}", b"x") for i in range(3)))
    with pytest.raises(MultiPartException, match="Too many files") as files:
        await request_for(three_files).form(max_files=2)
    with pytest.raises(MultiPartException, match="Too many fields") as fields:
        await request_for(three_fields).form(max_fields=2)
    with pytest.raises(MultiPartException, match="larger than the limit") as size:
        await request_for(multipart(part("a", b"x" * 101))).form(max_part_size=100)
    assert (files.value.status_code, fields.value.status_code, size.value.status_code) == (
        400,
        400,
        413,
    )
    assert len(await request_for(three_files).form(max_files=3, max_fields=0)) == 3
    # max_part_size is for text held in memory; files go to disk.
    form = await request_for(multipart(part("f", b"x" * 500, "f.txt"))).form(max_part_size=100)
    upload = form["f"]
    assert isinstance(upload, UploadFile) and upload.size == 500


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", multipart(part("a", b"1"))),  # no boundary
        (MULTIPART, b"this is not multipart at all"),
        (MULTIPART, multipart(part("a", b"1"))[:-8]),  # truncated before the end
        (MULTIPART, multipart(part("a", b"1"))[:30]),  # truncated inside the headers
        (MULTIPART, b""),
        (
            MULTIPART,
            f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
        ),
        (
            MULTIPART,
            # A Content-Disposition without a name.
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
        ),
        (MULTIPART, f"--{BOUNDARY}\r\nX: {'y' * 10000}\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode()),
        (f"multipart/form-data; boundary={'b' * 300}", b"--" + b"b" * 300 + b"--\r\n"),
    ],
)
async def test_malformed_multipart_is_400(content_type: str, body: bytes) -> None:
    with pytest.raises(MultiPartException) as error:
        await request_for(body, content_type).form()
    assert error.value.status_code == 400


async def test_files_closed_when_a_limit_stops_the_parse(
    spooled_files: list[SpooledTemporaryFile[bytes]],
) -> None:
    body = multipart(part("f1", b"x", "1.txt"), part("f2", b"y", "2.txt"), part("f3", b"z", "3"))
    with pytest.raises(MultiPartException):
        await request_for(body).form(max_files=2)
    assert len(spooled_files) == 2
    assert all(file.closed for file in spooled_files)


async def test_files_closed_on_a_truncated_body(
    spooled_files: list[SpooledTemporaryFile[bytes]],
) -> None:
    body = multipart(part("f", b"x" * 1000, "1.txt"))
    with pytest.raises(MultiPartException, match="truncated"):
        await request_for(body[:-50]).form()
    assert len(spooled_files) == 1 and spooled_files[0].closed


async def test_files_closed_on_disconnect(
    spooled_files: list[SpooledTemporaryFile[bytes]],
) -> None:
    body = multipart(part("f", b"x" * 1000, "1.txt"))
    with pytest.raises(ClientDisconnect):
        await request_for([body[:500]], then="disconnect").form()
    assert len(spooled_files) == 1 and spooled_files[0].closed


async def test_files_closed_on_cancellation(
    spooled_files: list[SpooledTemporaryFile[bytes]],
) -> None:
    body = multipart(part("f", b"x" * 1000, "1.txt"))
    with trio.move_on_after(0.05) as cancel_scope:
        await request_for([body[:500]], then="hang").form()
    assert cancel_scope.cancelled_caught
    assert len(spooled_files) == 1 and spooled_files[0].closed


async def test_request_close_and_async_with_close_the_files(
    spooled_files: list[SpooledTemporaryFile[bytes]],
) -> None:
    body = multipart(part("f", b"x", "1.txt"))
    request = request_for(body)
    await request.form()
    await request.close()
    async with request_for(body).form() as form:
        assert not spooled_files[1].closed
        assert isinstance(form["f"], UploadFile)
    assert [file.closed for file in spooled_files] == [True, True]


# ----------------------------------------------------------------------------- through an app


async def test_form_errors_are_http_responses() -> None:
    async def endpoint(request: Request) -> JSONResponse:
        form = await request.form(max_fields=1, max_part_size=10)
        return JSONResponse({key: str(value) for key, value in form.items()})

    async with AsyncTestClient(App(routes=[Route("/", endpoint, methods=["POST"])])) as http:
        ok = await http.post("/", data={"a": "1"})
        too_many = await http.post("/", data={"a": "1", "b": "2"})
        too_big = await http.post("/", files={"a": (None, b"x" * 11)})
        malformed = await http.post("/", content=b"junk", headers={"content-type": MULTIPART})
    assert ok.json() == {"a": "1"}
    assert too_many.status_code == 400 and "Too many fields" in too_many.text
    assert too_big.status_code == 413
    assert malformed.status_code == 400


def test_multipart_exception_is_an_http_exception() -> None:
    error = MultiPartException("nope", 413)
    assert isinstance(error, HTTPException)
    assert (error.status_code, error.detail, error.message) == (413, "nope", "nope")


async def test_example_upload_saves_safely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from examples import upload

    store = tmp_path / "uploads"
    monkeypatch.setattr(upload, "UPLOAD_DIR", store)
    monkeypatch.setattr(upload, "uploaded", {})
    sent_name = "../../<b>evil</b>.txt"
    async with AsyncTestClient(upload.app) as http:
        saved = await http.post(
            "/upload",
            data={"description": "test"},
            files={"file": (sent_name, b"payload")},
            follow_redirects=False,
        )
        page = await http.get("/")
        no_file = await http.post("/upload", data={"description": "no file"})
    assert saved.status_code == 303
    (stored,) = store.iterdir()
    assert stored.read_bytes() == b"payload"
    assert re.fullmatch(r"[0-9a-f]{32}", stored.name)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["uploads"]
    assert "../../&lt;b&gt;evil&lt;/b&gt;.txt" in page.text and "<b>" not in page.text
    assert no_file.status_code == 400


async def test_files_closed_when_the_request_ends(
    spooled_files: list[SpooledTemporaryFile[bytes]],
) -> None:
    async def endpoint(request: Request) -> JSONResponse:
        form = await request.form()  # neither closed nor used as a context manager
        return JSONResponse({"files": len(form)})

    async with AsyncTestClient(App(routes=[Route("/", endpoint, methods=["POST"])])) as http:
        response = await http.post("/", files={"a": ("a.txt", b"x"), "b": ("b.txt", b"y")})
        await http.wait_idle()
    assert response.json() == {"files": 2}
    assert [file.closed for file in spooled_files] == [True, True]
