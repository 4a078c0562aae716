"""toolkit.fileresponse: FileResponse streaming, validators, Content-Disposition and byte ranges."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.background import BackgroundTask
from toolkit.fileresponse import (
    FileResponse,
    RangeNotSatisfiable,
    content_disposition,
    parse_range_header,
)
from toolkit.testclient import AsyncTestClient
from toolkit.types import Message, Receive, Scope, Send

CONTENT = bytes(range(256)) * 1024  # 256 KiB: several chunks


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    return path


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello, world")
    return path


def app_for(make_response: Callable[[], FileResponse]) -> Callable[..., Any]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await make_response()(scope, receive, send)

    return app


def client_for(make_response: Callable[[], FileResponse]) -> AsyncTestClient:
    return AsyncTestClient(app_for(make_response), lifespan=False)


async def run_asgi(
    response: FileResponse, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None
) -> list[Message]:
    """Send ``response`` to a recording ``send`` and return the messages."""
    scope = {"type": "http", "method": method, "headers": headers or [], "path": "/"}
    messages: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("a file response never reads the request")

    async def send(message: Message) -> None:
        messages.append(message)

    await response(scope, receive, send)
    return messages


def parse_byteranges(response: Any) -> list[tuple[str, str, bytes]]:
    """The (content-type, content-range, bytes) of each part of a multipart/byteranges body."""
    boundary = re.fullmatch(
        r"multipart/byteranges; boundary=(\w+)", response.headers["content-type"]
    )
    assert boundary is not None
    delimiter = b"--" + boundary.group(1).encode()
    body = response.content
    assert body.endswith(delimiter + b"--\r\n")
    parts = []
    for raw in body[: -len(delimiter + b"--\r\n")].split(delimiter)[1:]:
        head, _, data = raw.partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().strip("\r\n").split("\r\n"))
        parts.append((headers["Content-Type"], headers["Content-Range"], data[:-2]))
    return parts


# ----------------------------------------------------------------------------- whole files


async def test_streams_a_large_file_in_chunks(big_file: Path) -> None:
    messages = await run_asgi(FileResponse(big_file))
    start, *bodies = messages
    assert start["status"] == 200
    assert len(bodies) == len(CONTENT) // FileResponse.chunk_size
    assert all(len(m["body"]) <= FileResponse.chunk_size for m in bodies)
    assert [m.get("more_body", False) for m in bodies] == [True] * (len(bodies) - 1) + [False]
    assert b"".join(m["body"] for m in bodies) == CONTENT


async def test_headers_of_a_file(big_file: Path) -> None:
    stat_result = os.stat(big_file)
    async with client_for(lambda: FileResponse(big_file)) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(len(CONTENT))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["last-modified"] == formatdate(stat_result.st_mtime, usegmt=True)
    assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+"', response.headers["etag"])
    assert "content-disposition" not in response.headers


async def test_small_file_and_guessed_text_type(small_file: Path) -> None:
    async with client_for(lambda: FileResponse(small_file)) as client:
        response = await client.get("/")
    assert response.content == b"hello, world"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "12"


async def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    async with client_for(lambda: FileResponse(tmp_path / "empty")) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


async def test_etag_changes_when_the_file_changes(small_file: Path) -> None:
    async with client_for(lambda: FileResponse(small_file)) as client:
        first = await client.get("/")
        small_file.write_bytes(b"changed content")
        second = await client.get("/")
    assert second.content == b"changed content"
    assert first.headers["etag"] != second.headers["etag"]


async def test_head_sends_headers_only(big_file: Path) -> None:
    messages = await run_asgi(FileResponse(big_file), method="HEAD")
    assert messages[0]["status"] == 200
    headers = dict(messages[0]["headers"])
    assert headers[b"content-length"] == str(len(CONTENT)).encode()
    assert [m["body"] for m in messages[1:]] == [b""]


async def test_media_type_from_filename_and_explicit(small_file: Path) -> None:
    guessed = FileResponse(small_file, filename="page.html")
    assert guessed.headers["content-type"] == "text/html; charset=utf-8"
    explicit = FileResponse(small_file, media_type="image/png")
    assert explicit.headers["content-type"] == "image/png"


async def test_background_task_runs_after_the_file(small_file: Path) -> None:
    ran: list[str] = []
    response = FileResponse(small_file, background=BackgroundTask(ran.append, "done"))
    messages = await run_asgi(response)
    assert messages[-1]["body"] == b"hello, world"
    assert ran == ["done"]


# ----------------------------------------------------------------------------- missing files


async def test_missing_file_is_404(tmp_path: Path) -> None:
    async with client_for(lambda: FileResponse(tmp_path / "nope.txt")) as client:
        response = await client.get("/")
    assert response.status_code == 404


async def test_file_removed_after_stat_is_404(small_file: Path) -> None:
    response = FileResponse(small_file, stat_result=os.stat(small_file))
    small_file.unlink()
    messages = await run_asgi(response)
    assert messages[0]["status"] == 404


async def test_directory_is_404(tmp_path: Path) -> None:
    messages = await run_asgi(FileResponse(tmp_path))
    assert messages[0]["status"] == 404


async def test_fifo_is_404_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    messages = await run_asgi(FileResponse(fifo))
    assert messages[0]["status"] == 404


async def test_unreadable_file_is_404(small_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Permissions do not stop root, so refuse the open the way the OS would for another user.
    def refuse(*args: Any) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    messages = await run_asgi(FileResponse(small_file))
    assert messages[0]["status"] == 404


async def test_nul_byte_in_path_is_404() -> None:
    messages = await run_asgi(FileResponse("bad\x00name"))
    assert messages[0]["status"] == 404


async def test_file_shrinking_mid_stream_is_an_error(big_file: Path) -> None:
    response = FileResponse(big_file)
    scope = {"type": "http", "method": "GET", "headers": [], "path": "/"}
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            os.truncate(big_file, FileResponse.chunk_size + 10)

    with pytest.raises(RuntimeError, match="shorter than expected"):
        await response(scope, None, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 200


# ----------------------------------------------------------------------------- Content-Disposition


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("report.pdf", 'attachment; filename="report.pdf"'),
        ("my report.pdf", 'attachment; filename="my report.pdf"'),
        (
            "résumé.pdf",
            "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
        ),
        ("日本.txt", "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
        (
            'say "hi".txt',
            "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
        ),
        ("100%.txt", "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"),
    ],
)
def test_content_disposition(filename: str, expected: str) -> None:
    assert content_disposition("attachment", filename) == expected


def test_content_disposition_cannot_inject_headers() -> None:
    value = content_disposition("attachment", "a\r\nSet-Cookie: x=1.txt")
    assert "\r" not in value and "\n" not in value
    assert value.endswith("filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x%3D1.txt")


async def test_filename_sets_inline_or_attachment(small_file: Path) -> None:
    async with client_for(
        lambda: FileResponse(small_file, filename="ça.txt", content_disposition_type="inline")
    ) as client:
        response = await client.get("/")
    assert response.headers["content-disposition"] == (
        "inline; filename=\"ca.txt\"; filename*=UTF-8''%C3%A7a.txt"
    )


# ----------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("range_header", "start", "stop"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=100-", 100, len(CONTENT)),
        ("bytes=-500", len(CONTENT) - 500, len(CONTENT)),
        ("bytes=1000-99999999999", 1000, len(CONTENT)),
        ("bytes=-99999999", 0, len(CONTENT)),
        (" Bytes = 5-9 ", 5, 10),
        ("bytes=70000-200000", 70000, 200001),
    ],
)
async def test_single_range(big_file: Path, range_header: str, start: int, stop: int) -> None:
    async with client_for(lambda: FileResponse(big_file)) as client:
        response = await client.get("/", headers={"range": range_header})
    assert response.status_code == 206
    assert response.content == CONTENT[start:stop]
    assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(CONTENT)}"
    assert response.headers["content-length"] == str(stop - start)


async def test_single_range_of_a_small_file(small_file: Path) -> None:
    async with client_for(lambda: FileResponse(small_file)) as client:
        response = await client.get("/", headers={"range": "bytes=7-"})
    assert response.status_code == 206
    assert response.content == b"world"
    assert response.headers["content-range"] == "bytes 7-11/12"


async def test_several_ranges_are_multipart(big_file: Path) -> None:
    async with client_for(lambda: FileResponse(big_file)) as client:
        response = await client.get("/", headers={"range": "bytes=0-9, 100000-100019, -5"})
    assert response.status_code == 206
    assert response.headers["content-length"] == str(len(response.content))
    size = len(CONTENT)
    assert parse_byteranges(response) == [
        ("application/octet-stream", f"bytes 0-9/{size}", CONTENT[0:10]),
        ("application/octet-stream", f"bytes 100000-100019/{size}", CONTENT[100000:100020]),
        ("application/octet-stream", f"bytes {size - 5}-{size - 1}/{size}", CONTENT[-5:]),
    ]


async def test_several_ranges_of_a_small_file(small_file: Path) -> None:
    async with client_for(lambda: FileResponse(small_file)) as client:
        response = await client.get("/", headers={"range": "bytes=0-4,7-"})
    assert response.headers["content-length"] == str(len(response.content))
    assert [part[1:] for part in parse_byteranges(response)] == [
        ("bytes 0-4/12", b"hello"),
        ("bytes 7-11/12", b"world"),
    ]


async def test_overlapping_and_adjacent_ranges_are_merged(big_file: Path) -> None:
    async with client_for(lambda: FileResponse(big_file)) as client:
        response = await client.get("/", headers={"range": "bytes=50-99,0-9,10-19,5-60"})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 0-99/{len(CONTENT)}"
    assert response.content == CONTENT[:100]


async def test_head_of_a_range(big_file: Path) -> None:
    messages = await run_asgi(FileResponse(big_file), "HEAD", [(b"range", b"bytes=0-9,20-29")])
    assert messages[0]["status"] == 206
    assert [m["body"] for m in messages[1:]] == [b""]


@pytest.mark.parametrize(
    "range_header",
    [
        "bytes=300000-",  # starts past the end
        "bytes=-0",  # an empty suffix
        "bytes=abc",
        "bytes=5-1",  # ends before it starts
        "bytes=1-2-3",
        "bytes=-",
        "bytes=",
        "bytes=,",
        "bytes=+1-2",
        "bytes=0x10-20",
        "bytes=\u00b2-\u00b3",  # superscript digits (str.isdigit() says yes)
        "0-10",  # no unit
    ],
)
async def test_unsatisfiable_or_malformed_range_is_416(big_file: Path, range_header: str) -> None:
    async with client_for(lambda: FileResponse(big_file)) as client:
        response = await client.get("/", headers={"range": range_header.encode("latin-1")})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(CONTENT)}"


async def test_range_of_an_empty_file_is_416(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    async with client_for(lambda: FileResponse(tmp_path / "empty")) as client:
        response = await client.get("/", headers={"range": "bytes=0-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */0"


@pytest.mark.parametrize("range_header", ["items=0-5", "bytes=" + ",".join(["0-1"] * 101)])
async def test_range_ignored_for_other_units_and_too_many_ranges(
    big_file: Path, range_header: str
) -> None:
    async with client_for(lambda: FileResponse(big_file)) as client:
        response = await client.get("/", headers={"range": range_header})
    assert response.status_code == 200
    assert response.content == CONTENT


async def test_one_hundred_ranges_are_served(big_file: Path) -> None:
    specs = ",".join(f"{i * 100}-{i * 100 + 9}" for i in range(100))
    async with client_for(lambda: FileResponse(big_file)) as client:
        response = await client.get("/", headers={"range": f"bytes={specs}"})
    assert response.status_code == 206
    parts = parse_byteranges(response)
    assert len(parts) == 100
    assert parts[42][2] == CONTENT[4200:4210]


async def test_range_ignored_unless_get_and_200(big_file: Path) -> None:
    async with client_for(lambda: FileResponse(big_file, status_code=404)) as client:
        response = await client.get("/", headers={"range": "bytes=0-9"})
        assert response.status_code == 404
        assert response.content == CONTENT
    async with client_for(lambda: FileResponse(big_file)) as client:
        response = await client.post("/", headers={"range": "bytes=0-9"})
        assert response.status_code == 200
        assert len(response.content) == len(CONTENT)


async def test_if_range(big_file: Path) -> None:
    async with client_for(lambda: FileResponse(big_file)) as client:
        full = await client.get("/")
        etag, last_modified = full.headers["etag"], full.headers["last-modified"]
        for if_range, status in [
            (etag, 206),
            (last_modified, 206),
            ('"another-etag"', 200),
            ("W/" + etag, 200),
            ("Mon, 01 Jan 2001 00:00:00 GMT", 200),
            ("not a date", 200),
        ]:
            response = await client.get("/", headers={"range": "bytes=0-9", "if-range": if_range})
            assert response.status_code == status, if_range
            assert response.content == (CONTENT[:10] if status == 206 else CONTENT)


# ----------------------------------------------------------------------------- parse_range_header


def test_parse_range_header_merges_many_overlapping_ranges_fast() -> None:
    specs = ",".join(f"{i}-{i + 1000}" for i in range(100))
    assert parse_range_header(f"bytes={specs}", 10_000, 100) == [(0, 1100)]


def test_parse_range_header_huge_numbers() -> None:
    assert parse_range_header("bytes=0-" + "9" * 5000, 10, 100) == [(0, 10)]
    with pytest.raises(RangeNotSatisfiable):
        parse_range_header("bytes=" + "9" * 5000 + "-", 10, 100)
    assert parse_range_header("bytes=" + "0" * 50 + "3-4", 10, 100) == [(3, 5)]


@given(
    size=st.integers(min_value=1, max_value=1000),
    specs=st.lists(
        st.tuples(st.integers(0, 1200), st.integers(0, 1200)).map(sorted), min_size=1, max_size=20
    ),
)
def test_parse_range_header_covers_exactly_the_requested_bytes(
    size: int, specs: list[list[int]]
) -> None:
    header = "bytes=" + ",".join(f"{first}-{last}" for first, last in specs)
    wanted = {i for first, last in specs for i in range(first, min(last + 1, size))}
    try:
        ranges = parse_range_header(header, size, 100)
    except RangeNotSatisfiable:
        assert not wanted
        return
    assert ranges is not None
    covered = [i for start, stop in ranges for i in range(start, stop)]
    assert covered == sorted(wanted)  # sorted, each byte once
    assert all(stop < next_start for (_, stop), (next_start, _) in itertools.pairwise(ranges))
