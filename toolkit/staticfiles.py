"""``StaticFiles``: an ASGI app serving the files of a directory (or of packages' folders).

The request path is checked segment by segment before it touches the file system: ``..``,
empty segments, backslashes and NUL bytes are a 404 (so are their percent-encoded forms, which
the server decodes before the path reaches the app). The resolved file must then lie inside the
served directory; a symlink pointing elsewhere is a 404 unless ``follow_symlink=True``.
"""

from __future__ import annotations

import importlib.util
import os
import stat
from collections.abc import Sequence
from email.utils import parsedate_to_datetime

import trio

from toolkit.datastructures import URL, Headers
from toolkit.exceptions import HTTPException
from toolkit.fileresponse import FileResponse
from toolkit.responses import RedirectResponse, Response
from toolkit.routing import get_route_path
from toolkit.types import Receive, Scope, Send

__all__ = ["NotModifiedResponse", "StaticFiles"]

PathLike = str | os.PathLike[str]


class NotModifiedResponse(Response):
    """A 304 carrying only the headers RFC 9110 (section 15.4.5) wants repeated from the 200."""

    NOT_MODIFIED_HEADERS = ("cache-control", "content-location", "date", "etag", "expires", "vary")

    def __init__(self, headers: Headers) -> None:
        super().__init__(
            status_code=304,
            headers={
                name: value for name, value in headers.items() if name in self.NOT_MODIFIED_HEADERS
            },
        )


def _relative_path(route_path: str) -> str | None:
    """The file-system path under the served directory for ``route_path``, or None if unsafe.

    Segments are joined with ``os.sep``; a trailing ``/`` (a directory URL) is dropped.
    """
    segments = route_path.split("/")
    if segments[0] == "":
        del segments[0]
    if segments and segments[-1] == "":
        del segments[-1]
    safe: list[str] = []
    for segment in segments:
        if segment in ("", "..") or "\\" in segment or "\x00" in segment:
            return None
        if os.altsep is not None and os.altsep in segment:
            return None
        if segment != ".":
            safe.append(segment)
    return os.sep.join(safe)


class StaticFiles:
    """Serve files from ``directory`` and/or the ``statics`` folders of ``packages``.

    ``packages`` items are package names or ``(package, folder)`` pairs. With ``html=True``, a
    directory URL serves its ``index.html`` (redirecting to add the trailing ``/``), and a miss
    serves the top-level ``404.html`` if there is one. ``check_dir`` checks at construction that
    ``directory`` exists. Only GET and HEAD are allowed (405 otherwise); ``If-None-Match`` and
    ``If-Modified-Since`` get a 304 when the file has not changed.
    """

    def __init__(
        self,
        *,
        directory: PathLike | None = None,
        packages: Sequence[str | tuple[str, str]] | None = None,
        html: bool = False,
        check_dir: bool = True,
        follow_symlink: bool = False,
    ) -> None:
        self.directory = directory
        self.packages = packages
        self.all_directories = self.get_directories(directory, packages)
        self.html = html
        self.config_checked = False
        self.follow_symlink = follow_symlink
        if check_dir and directory is not None and not os.path.isdir(directory):
            raise RuntimeError(f"Directory '{directory}' does not exist")
        self._roots: list[str] | None = None

    def get_directories(
        self,
        directory: PathLike | None = None,
        packages: Sequence[str | tuple[str, str]] | None = None,
    ) -> list[PathLike]:
        """Every directory files are looked up in: ``directory`` first, then each package's."""
        directories: list[PathLike] = []
        if directory is not None:
            directories.append(directory)
        for package in packages or ():
            package_name, folder = package if isinstance(package, tuple) else (package, "statics")
            spec = importlib.util.find_spec(package_name)
            locations = list(spec.submodule_search_locations or ()) if spec else []
            if not locations:
                raise RuntimeError(f"Package {package_name!r} could not be found.")
            package_directory = os.path.join(locations[0], folder)
            if not os.path.isdir(package_directory):
                raise RuntimeError(
                    f"Directory {folder!r} in package {package_name!r} could not be found."
                )
            directories.append(os.path.normpath(package_directory))
        return directories

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (a WebSocket connection to a static mount is closed)."""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
            return
        assert scope["type"] == "http"
        if not self.config_checked:
            await self.check_config()
            self.config_checked = True
        response = await self.get_response(self.get_path(scope), scope)
        await response(scope, receive, send)

    def get_path(self, scope: Scope) -> str:
        """The path to look up under the served directories, or ``""`` for an unsafe request.

        ``""`` means the top directory itself for the request ``/``; any unsafe path is
        mapped to NUL, which no lookup matches.
        """
        relative = _relative_path(get_route_path(scope))
        return "\x00" if relative is None else relative

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The response for ``path``: a file, an index page, a redirect, a 304, 404 or 405."""
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        full_path, stat_result = await trio.to_thread.run_sync(self.lookup_path, path)
        if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
            return self.file_response(full_path, stat_result, scope)
        if stat_result is not None and stat.S_ISDIR(stat_result.st_mode) and self.html:
            index_path = os.path.join(path, "index.html") if path else "index.html"
            full_path, stat_result = await trio.to_thread.run_sync(self.lookup_path, index_path)
            if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
                if not scope["path"].endswith("/"):
                    # A directory's URL ends in "/", so the index page's relative links work.
                    url = URL(scope=scope)
                    return RedirectResponse(url=url.replace(path=url.path + "/"))
                return self.file_response(full_path, stat_result, scope)
        if self.html:
            full_path, stat_result = await trio.to_thread.run_sync(self.lookup_path, "404.html")
            if stat_result is not None and stat.S_ISREG(stat_result.st_mode):
                return FileResponse(full_path, stat_result=stat_result, status_code=404)
        raise HTTPException(status_code=404)

    def _root_paths(self) -> list[str]:
        """The served directories as absolute paths (symlinks resolved unless followed)."""
        if self._roots is None:
            resolve = os.path.abspath if self.follow_symlink else os.path.realpath
            self._roots = [resolve(directory) for directory in self.all_directories]
        return self._roots

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        """The first ``(full path, stat)`` of ``path`` in a served directory, else ``("", None)``.

        Blocking: runs in a worker thread. Unsafe, missing, unreadable or over-long paths are
        all a miss, never an error.
        """
        if "\x00" in path or os.path.isabs(path) or path.startswith(("/", "\\")):
            return "", None
        for root in self._root_paths():
            joined = os.path.join(root, path) if path else root
            full_path = joined if self.follow_symlink else os.path.realpath(joined)
            if full_path != root and not full_path.startswith(root.rstrip(os.sep) + os.sep):
                # A symlink leading out of the directory.
                continue
            try:
                return full_path, os.stat(full_path)
            except (OSError, ValueError):
                continue
        return "", None

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """A ``FileResponse`` for the file, or a 304 if the request's validators still match."""
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response

    async def check_config(self) -> None:
        """Fail loudly, once, if ``directory`` is missing or not a directory."""
        if self.directory is None:
            return
        try:
            stat_result = await trio.to_thread.run_sync(os.stat, self.directory)
        except FileNotFoundError:
            raise RuntimeError(
                f"StaticFiles directory '{self.directory}' does not exist."
            ) from None
        if not stat.S_ISDIR(stat_result.st_mode):
            raise RuntimeError(f"StaticFiles path '{self.directory}' is not a directory.")

    def is_not_modified(self, response_headers: Headers, request_headers: Headers) -> bool:
        """Whether the client's cached copy is current (RFC 9110 section 13.1.2 and 13.1.3).

        ``If-None-Match`` wins when present (weak comparison, ``*`` matches anything); otherwise
        ``If-Modified-Since`` is compared to ``Last-Modified`` at one-second precision.
        """
        if_none_match = request_headers.get("if-none-match")
        if if_none_match is not None:
            if if_none_match.strip() == "*":
                return True
            etag = response_headers.get("etag", "").removeprefix("W/")
            tags = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
            return etag in tags
        if_modified_since = request_headers.get("if-modified-since")
        last_modified = response_headers.get("last-modified")
        if if_modified_since is None or last_modified is None:
            return False
        try:
            return parsedate_to_datetime(if_modified_since) >= parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            return False
