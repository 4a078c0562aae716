"""The files benchmark app in Starlette (see files.py). toolkit_files_app.py is this file with
the imports changed, and one setting more.

The files live in the folder named by the ``BENCH_FILES_DIR`` environment variable, which
files.py creates and fills at run time: ``big.bin`` for downloads, ``static/`` for StaticFiles.
"""

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

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

app = Starlette(routes=routes)
