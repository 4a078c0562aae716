"""toolkit.staticfiles: serving a directory, html mode, conditional requests, and no way out."""

from __future__ import annotations

import os
from email.utils import formatdate
from pathlib import Path

import pytest

from toolkit.applications import App
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse
from toolkit.routing import Mount, Route
from toolkit.staticfiles import StaticFiles
from toolkit.testclient import AsyncTestClient
from toolkit.types import Message

SECRET = b"top secret"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """``tmp_path/static`` with a few files; secrets beside it that must never be served."""
    static = tmp_path / "static"
    (static / "sub").mkdir(parents=True)
    (static / "x.css").write_bytes(b"body { color: red }")
    (static / "app.js").write_bytes(b"console.log(1)")
    (static / "sub" / "page.txt").write_bytes(b"nested")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "static_private").mkdir()
    (tmp_path / "static_private" / "key.txt").write_bytes(SECRET)
    return static


@pytest.fixture
def html_site(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    (root / "docs").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_bytes(b"<h1>home</h1>")
    (root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    (root / "404.html").write_bytes(b"<h1>not here</h1>")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    return root


def client(static: StaticFiles) -> AsyncTestClient:
    return AsyncTestClient(App(routes=[Mount("/static", static, name="static")]))


async def test_seed_mount_and_url_for(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(site.parent)

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.url_for("static", path="/x.css")))

    app = App(routes=[Route("/", page)])
    app.mount("/static", StaticFiles(directory="static"), name="static")
    async with AsyncTestClient(app) as http:
        url = (await http.get("/")).text
        assert url == "http://testserver/static/x.css"
        response = await http.get(url)
    assert response.status_code == 200
    assert response.text == "body { color: red }"
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["content-length"] == "19"
    assert "etag" in response.headers and "last-modified" in response.headers


async def test_nested_file_head_and_ranges(site: Path) -> None:
    async with client(StaticFiles(directory=site)) as http:
        nested = await http.get("/static/sub/page.txt")
        head = await http.head("/static/sub/page.txt")
        partial = await http.get("/static/sub/page.txt", headers={"range": "bytes=1-3"})
    assert nested.text == "nested"
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "6"
    assert partial.status_code == 206 and partial.content == b"est"


@pytest.mark.parametrize("path", ["/static/missing.css", "/static/sub", "/static/sub/", "/static/"])
async def test_missing_files_and_directories_are_404(site: Path, path: str) -> None:
    async with client(StaticFiles(directory=site)) as http:
        response = await http.get(path)
    assert response.status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_only_get_and_head(site: Path, method: str) -> None:
    async with client(StaticFiles(directory=site)) as http:
        response = await http.request(method, "/static/x.css")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


# ----------------------------------------------------------------------------- html mode


async def test_html_mode_index_redirect_and_404_page(html_site: Path) -> None:
    async with client(StaticFiles(directory=html_site, html=True)) as http:
        home = await http.get("/static/")
        docs = await http.get("/static/docs/")
        redirect = await http.get("/static/docs", follow_redirects=False)
        missing = await http.get("/static/nope.html")
        no_index = await http.get("/static/empty/")
    assert home.text == "<h1>home</h1>"
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert docs.text == "<h1>docs</h1>"
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "http://testserver/static/docs/"
    assert missing.status_code == 404 and missing.text == "<h1>not here</h1>"
    assert no_index.status_code == 404 and no_index.text == "<h1>not here</h1>"


async def test_html_mode_without_404_page(html_site: Path) -> None:
    (html_site / "404.html").unlink()
    async with client(StaticFiles(directory=html_site, html=True)) as http:
        response = await http.get("/static/nope.html")
    assert response.status_code == 404
    assert response.text == "Not Found"


# ----------------------------------------------------------------------------- conditional requests


async def test_if_none_match(site: Path) -> None:
    async with client(StaticFiles(directory=site)) as http:
        first = await http.get("/static/x.css")
        etag = first.headers["etag"]
        for value in [etag, f'"other", {etag}', f"W/{etag}", "*"]:
            response = await http.get("/static/x.css", headers={"if-none-match": value})
            assert response.status_code == 304, value
            assert response.content == b""
            assert response.headers["etag"] == etag
            assert "content-length" not in response.headers
        changed = await http.get("/static/x.css", headers={"if-none-match": '"other"'})
        head = await http.head("/static/x.css", headers={"if-none-match": etag})
    assert changed.status_code == 200
    assert head.status_code == 304


async def test_if_modified_since(site: Path) -> None:
    mtime = os.stat(site / "x.css").st_mtime
    async with client(StaticFiles(directory=site)) as http:
        same = await http.get(
            "/static/x.css", headers={"if-modified-since": formatdate(mtime, usegmt=True)}
        )
        later = await http.get(
            "/static/x.css", headers={"if-modified-since": formatdate(mtime + 60, usegmt=True)}
        )
        older = await http.get(
            "/static/x.css", headers={"if-modified-since": formatdate(mtime - 60, usegmt=True)}
        )
        garbage = await http.get("/static/x.css", headers={"if-modified-since": "yesterday"})
        # If-None-Match wins over If-Modified-Since.
        both = await http.get(
            "/static/x.css",
            headers={
                "if-none-match": '"other"',
                "if-modified-since": formatdate(mtime + 60, usegmt=True),
            },
        )
    assert (same.status_code, later.status_code) == (304, 304)
    assert (older.status_code, garbage.status_code, both.status_code) == (200, 200, 200)


# ----------------------------------------------------------------------------- no way out


TRAVERSALS = [
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/..%2fsecret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/sub/%2e%2e/%2e%2e/secret.txt",
    "/static/sub/..%2f..%2fsecret.txt",
    "/static/..%5csecret.txt",
    "/static/sub%5c..%5c..%5csecret.txt",
    "/static/%5c..%5csecret.txt",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/%2f%2e%2e%2fsecret.txt",
    "/static/x.css%00",
    "/static/%00../secret.txt",
    "/static/" + "a" * 300,
]


@pytest.mark.parametrize("path", TRAVERSALS)
@pytest.mark.parametrize(("html", "follow_symlink"), [(False, False), (True, False), (False, True)])
async def test_no_way_out_of_the_directory(
    site: Path, path: str, html: bool, follow_symlink: bool
) -> None:
    static = StaticFiles(directory=site, html=html, follow_symlink=follow_symlink)
    async with client(static) as http:
        response = await http.get(path)
    assert response.status_code == 404
    assert SECRET not in response.content


async def test_symlinks_out_of_the_directory(site: Path) -> None:
    (site / "leak.txt").symlink_to(site.parent / "secret.txt")
    (site / "leakdir").symlink_to(site.parent)
    # A sibling whose name starts with the served directory's name.
    (site / "private").symlink_to(site.parent / "static_private")
    (site / "alias.css").symlink_to(site / "x.css")
    paths = ["/static/leak.txt", "/static/leakdir/secret.txt", "/static/private/key.txt"]
    async with client(StaticFiles(directory=site)) as http:
        for path in paths:
            response = await http.get(path)
            assert response.status_code == 404, path
        inside = await http.get("/static/alias.css")
    assert inside.status_code == 200
    async with client(StaticFiles(directory=site, follow_symlink=True)) as http:
        followed = [await http.get(path) for path in paths]
    assert [r.content for r in followed] == [SECRET] * 3


async def test_served_directory_may_itself_be_a_symlink(site: Path, tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to(site)
    async with client(StaticFiles(directory=tmp_path / "link")) as http:
        response = await http.get("/static/x.css")
    assert response.status_code == 200


def test_lookup_path_rejects_absolute_and_nul_paths(site: Path) -> None:
    static = StaticFiles(directory=site)
    assert static.lookup_path("/etc/passwd") == ("", None)
    assert static.lookup_path(str(site.parent / "secret.txt")) == ("", None)
    assert static.lookup_path("x.css\x00") == ("", None)
    full_path, stat_result = static.lookup_path("x.css")
    assert full_path == os.path.realpath(site / "x.css") and stat_result is not None


# ----------------------------------------------------------------------------- configuration


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root = tmp_path / "pkgs" / "toolkit_test_pkg"
    (root / "statics").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "__init__.py").write_text("")
    (root / "statics" / "pkg.css").write_bytes(b"from statics")
    (root / "assets" / "pkg.css").write_bytes(b"from assets")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    return "toolkit_test_pkg"


async def test_packages(package: str, site: Path) -> None:
    async with client(StaticFiles(packages=[package])) as http:
        assert (await http.get("/static/pkg.css")).text == "from statics"
    async with client(StaticFiles(packages=[(package, "assets")])) as http:
        assert (await http.get("/static/pkg.css")).text == "from assets"
    # ``directory`` comes first; packages fill in what it lacks.
    async with client(StaticFiles(directory=site, packages=[package])) as http:
        assert (await http.get("/static/pkg.css")).text == "from statics"
        assert (await http.get("/static/x.css")).status_code == 200


def test_package_errors(package: str) -> None:
    with pytest.raises(RuntimeError, match="could not be found"):
        StaticFiles(packages=["no_such_package_anywhere"])
    with pytest.raises(RuntimeError, match="'missing' in package"):
        StaticFiles(packages=[(package, "missing")])


async def test_check_dir(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        StaticFiles(directory=tmp_path / "nope")
    missing = StaticFiles(directory=tmp_path / "nope", check_dir=False)
    with pytest.raises(RuntimeError, match="does not exist"):
        await missing.check_config()
    (tmp_path / "file").write_bytes(b"")
    not_a_directory = StaticFiles(directory=tmp_path / "file", check_dir=False)
    with pytest.raises(RuntimeError, match="is not a directory"):
        await not_a_directory.check_config()
    app = App(routes=[Mount("/static", missing)])
    async with AsyncTestClient(app, raise_server_exceptions=False) as http:
        assert (await http.get("/static/x.css")).status_code == 500


async def test_directory_created_after_construction(tmp_path: Path) -> None:
    static = StaticFiles(directory=tmp_path / "later", check_dir=False)
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "a.txt").write_bytes(b"a")
    async with client(static) as http:
        assert (await http.get("/static/a.txt")).text == "a"


async def test_websocket_is_closed(site: Path) -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await StaticFiles(directory=site)({"type": "websocket"}, None, send)  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 1000, "reason": ""}]


async def test_example_static_site() -> None:
    from examples.static_site.app import app

    async with AsyncTestClient(app) as http:
        home = await http.get("/")
        about = await http.get("/about")
        missing = await http.get("/missing.html")
        css = await http.get("/style.css")
    assert home.status_code == 200 and "Hello from a static site" in home.text
    assert about.url.path == "/about/" and "<h1>About</h1>" in about.text
    assert missing.status_code == 404 and "Nothing here" in missing.text
    assert css.headers["content-type"] == "text/css; charset=utf-8"
