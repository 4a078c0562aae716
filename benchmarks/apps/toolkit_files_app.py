"""The files benchmark app in toolkit: starlette_files_app.py with the imports changed, and a body
limit large enough for the 50 MB upload.

The files live in the folder named by the ``BENCH_FILES_DIR`` environment variable, which
files.py creates and fills at run time: ``big.bin`` for downloads, ``static/`` for StaticFiles.
"""

import os
from pathlib import Path

from toolkit.applications import App
from toolkit.requests import Request
from toolkit.responses import FileResponse, JSONResponse
from toolkit.routing import Mount, Route
from toolkit.staticfiles import StaticFiles

FILES_DIR = Path(os.environ["BENCH_FILES_DIR"])


async def download(request: Request) -> FileResponse:
    """The download scenario: a big file, streamed from disk."""
    return FileResponse(FILES_DIR / "big.bin")


async def upload(request: Request) -> JSONResponse:
    """The upload scenario: a multipart form with one file, parsed (the file spooled to disk);
    answers with the file's name and size."""
    async with request.form() as form:
        uploaded = form["file"]
        return JSONResponse({"filename": uploaded.filename, "size": uploaded.size})


routes = [
    Route("/download", download),
    Route("/upload", upload, methods=["POST"]),
    Mount("/static", StaticFiles(directory=FILES_DIR / "static")),
]

# Starlette has no body limit; toolkit's default (16 MiB, a 413 beyond) would refuse the upload.
app = App(routes=routes, max_body_size=256 * 1024 * 1024)
