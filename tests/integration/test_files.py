"""Files over real sockets: large downloads whole and by ranges, static files, streamed uploads."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest
import trio

from toolkit.applications import App
from toolkit.datastructures import UploadFile
from toolkit.fileresponse import FileResponse
from toolkit.formparsers import MultiPartParser
from toolkit.requests import Request
from toolkit.responses import JSONResponse, Response
from toolkit.routing import Mount, Route
from toolkit.staticfiles import StaticFiles
from toolkit.testing.live import live_server

SIZE = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "big.bin"
    block = hashlib.sha256(b"toolkit").digest() * 32768  # 1 MiB, not all one byte
    with path.open("wb") as file:
        for index in range(SIZE // len(block)):
            file.write(bytes([index]) + block[1:])
    return path


def app_for(big_file: Path, static_dir: Path, uploads: list[dict[str, object]]) -> App:
    async def download(request: Request) -> Response:
        return FileResponse(big_file, filename="big.bin")

    async def upload(request: Request) -> Response:
        async with request.form() as form:
            file = form["file"]
            assert isinstance(file, UploadFile)
            digest = hashlib.sha256()
            while chunk := await file.read(1024 * 1024):
                digest.update(chunk)
            uploads.append({"on_disk": file.file._rolled, "file": file.file})  # type: ignore[attr-defined]
            return JSONResponse(
                {
                    "filename": file.filename,
                    "size": file.size,
                    "sha256": digest.hexdigest(),
                    "note": form["note"],
                }
            )

    return App(
        routes=[
            Route("/download", download),
            Route("/upload", upload, methods=["POST"]),
            Mount("/static", StaticFiles(directory=static_dir, html=True), name="static"),
        ]
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_large_file_whole_and_by_ranges(big_file: Path, tmp_path: Path) -> None:
    content = big_file.read_bytes()
    with trio.fail_after(30):
        async with (
            live_server(app_for(big_file, tmp_path, [])) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            digest = hashlib.sha256()
            received = 0
            async with client.stream("GET", "/download") as response:
                assert response.status_code == 200
                assert response.headers["content-length"] == str(SIZE)
                async for chunk in response.aiter_raw():
                    digest.update(chunk)
                    received += len(chunk)
            assert received == SIZE
            assert digest.hexdigest() == sha256_of(big_file)

            middle = await client.get("/download", headers={"range": "bytes=5000000-15000000"})
            assert middle.status_code == 206
            assert middle.headers["content-range"] == f"bytes 5000000-15000000/{SIZE}"
            assert middle.content == content[5_000_000:15_000_001]

            tail = await client.get("/download", headers={"range": "bytes=-1000"})
            assert tail.content == content[-1000:]

            several = await client.get(
                "/download", headers={"range": "bytes=0-99,10000000-10999999,-10"}
            )
            assert several.status_code == 206
            assert several.headers["content-length"] == str(len(several.content))
            boundary = re.search(r"boundary=(\w+)", several.headers["content-type"])
            assert boundary is not None
            pieces = several.content.split(b"--" + boundary.group(1).encode())
            bodies = [piece.split(b"\r\n\r\n", 1)[1][:-2] for piece in pieces[1:-1]]
            assert bodies == [content[:100], content[10_000_000:11_000_000], content[-10:]]

            unsatisfiable = await client.get("/download", headers={"range": f"bytes={SIZE}-"})
            assert unsatisfiable.status_code == 416
            # The server still serves after every one of those.
            assert (await client.head("/download")).headers["content-length"] == str(SIZE)


async def test_client_leaving_mid_download_leaves_the_server_serving(
    big_file: Path, tmp_path: Path
) -> None:
    with trio.fail_after(10):
        async with live_server(app_for(big_file, tmp_path, [])) as server:
            async with (
                httpx.AsyncClient(base_url=server.url) as client,
                client.stream("GET", "/download") as response,
            ):
                await anext(response.aiter_raw())
            async with httpx.AsyncClient(base_url=server.url) as client:
                response = await client.get("/download", headers={"range": "bytes=0-9"})
                assert response.status_code == 206


async def test_static_files_and_traversal_over_real_sockets(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<h1>index</h1>")
    (static / "style.css").write_text("p {}")
    (tmp_path / "secret.txt").write_text("secret")
    with trio.fail_after(10):
        async with (
            live_server(app_for(tmp_path / "secret.txt", static, [])) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            css = await client.get("/static/style.css")
            assert css.text == "p {}"
            cached = await client.get(
                "/static/style.css", headers={"if-none-match": css.headers["etag"]}
            )
            assert cached.status_code == 304
            assert (await client.get("/static/")).text == "<h1>index</h1>"
            for path in ("/static/%2e%2e/secret.txt", "/static/..%2fsecret.txt", "/static/%00"):
                response = await client.get(path)
                assert response.status_code == 404, path
                assert b"secret" not in response.content


async def test_multipart_upload_is_streamed_to_disk(big_file: Path, tmp_path: Path) -> None:
    uploads: list[dict[str, object]] = []
    payload = big_file.read_bytes()[: 8 * 1024 * 1024]
    with trio.fail_after(30):
        async with (
            live_server(app_for(big_file, tmp_path, uploads)) as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            response = await client.post(
                "/upload",
                data={"note": "eight megabytes"},
                files={"file": ("../../evil name.bin", payload, "application/octet-stream")},
            )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "filename": "../../evil name.bin",
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "note": "eight megabytes",
    }
    assert len(payload) > MultiPartParser.spool_max_size
    assert uploads[0]["on_disk"] is True
    # ``async with request.form()`` closed the temporary file when the handler was done.
    spooled = uploads[0]["file"]
    assert spooled.closed  # type: ignore[attr-defined]
