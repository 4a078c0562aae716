"""A file upload form: ``python -m toolkit serve examples.upload:app``, then open
http://127.0.0.1:8000/.

Uploads are saved safely: the name a browser sends is only ever shown (escaped), never used as a
path; each file is stored under a fresh random name in ``UPLOAD_DIR`` and copied in chunks, so a
large upload never sits in memory. The form itself is limited to one file and small text fields.
"""

import html
import os
import secrets
import tempfile
from pathlib import Path

import trio

from toolkit.applications import App
from toolkit.datastructures import UploadFile
from toolkit.exceptions import HTTPException
from toolkit.requests import Request
from toolkit.responses import HTMLResponse, RedirectResponse
from toolkit.routing import Route

UPLOAD_DIR = Path(os.environ.get("UPLOAD_DIR", Path(tempfile.gettempdir()) / "toolkit-uploads"))
CHUNK_SIZE = 1024 * 1024

# The stored name of each upload, mapped to the name it was sent with (for display only).
uploaded: dict[str, str] = {}

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Upload</title></head>
<body>
  <h1>Upload a file</h1>
  <form action="/upload" method="post" enctype="multipart/form-data">
    <p><label>Description <input name="description" maxlength="200"></label></p>
    <p><input type="file" name="file" required></p>
    <p><button>Upload</button></p>
  </form>
  <h2>Uploaded</h2>
  <ul>{items}</ul>
</body>
</html>
"""


async def save(upload: UploadFile) -> str:
    """Copy ``upload`` into ``UPLOAD_DIR`` under a new random name, and return that name."""
    stored_name = secrets.token_hex(16)
    await trio.Path(UPLOAD_DIR).mkdir(parents=True, exist_ok=True)
    # "xb": never overwrite anything, even if a name were to repeat.
    async with await trio.open_file(UPLOAD_DIR / stored_name, "xb") as target:
        while chunk := await upload.read(CHUNK_SIZE):
            await target.write(chunk)
    return stored_name


async def homepage(request: Request) -> HTMLResponse:
    items = "".join(
        f"<li>{html.escape(sent_name)} (stored as {stored_name})</li>"
        for stored_name, sent_name in uploaded.items()
    )
    return HTMLResponse(PAGE.format(items=items or "<li>nothing yet</li>"))


async def upload(request: Request) -> RedirectResponse:
    # One file, two fields at most, 200-byte fields; `async with` closes the temporary file.
    async with request.form(max_files=1, max_fields=2, max_part_size=200) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile) or not file.filename:
            raise HTTPException(400, "Choose a file to upload.")
        stored_name = await save(file)
        uploaded[stored_name] = file.filename
    return RedirectResponse("/", status_code=303)


app = App(routes=[Route("/", homepage), Route("/upload", upload, methods=["POST"])])
