"""toolkit.templating: Jinja2Templates, TemplateResponse, url_for, context processors, async."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest

from toolkit.applications import App
from toolkit.background import BackgroundTask
from toolkit.requests import Request
from toolkit.responses import Response
from toolkit.routing import Mount, Route
from toolkit.staticfiles import StaticFiles
from toolkit.templating import Jinja2Templates
from toolkit.testclient import AsyncTestClient


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text(
        "<p>{{ message }}</p><a href=\"{{ url_for('static', path='/x.css') }}\">css</a>"
        "<i>{{ request.url.path }}</i>"
    )
    (tmp_path / "note.txt").write_text("{{ message }}")
    (tmp_path / "user.html").write_text("{{ user }} on {{ site }}")
    (tmp_path / "slow.html").write_text("{% for item in items() %}{{ item }};{% endfor %}")
    (tmp_path / "x.css").write_text("")
    return tmp_path


def app_with(templates: Jinja2Templates, name: str, context: dict[str, Any], **kwargs: Any) -> App:
    async def page(request: Request) -> Response:
        return templates.TemplateResponse(request, name, dict(context), **kwargs)

    return App(
        routes=[
            Route("/page", page),
            Mount("/static", StaticFiles(directory=templates_dir(templates)), name="static"),
        ]
    )


def templates_dir(templates: Jinja2Templates) -> str:
    loader = templates.env.loader
    assert isinstance(loader, jinja2.FileSystemLoader)
    return str(loader.searchpath[0])


async def test_template_response_with_url_for_and_autoescape(template_dir: Path) -> None:
    templates = Jinja2Templates(directory=template_dir)
    app = app_with(templates, "index.html", {"message": "<script>alert(1)</script>"})
    async with AsyncTestClient(app) as http:
        response = await http.get("/page")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.text == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
        '<a href="http://testserver/static/x.css">css</a><i>/page</i>'
    )


async def test_text_templates_are_not_escaped(template_dir: Path) -> None:
    templates = Jinja2Templates(directory=template_dir)
    app = app_with(templates, "note.txt", {"message": "a < b"}, media_type="text/plain")
    async with AsyncTestClient(app) as http:
        response = await http.get("/page")
    assert response.text == "a < b"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


async def test_status_headers_and_background(template_dir: Path) -> None:
    ran: list[str] = []
    templates = Jinja2Templates(directory=template_dir)
    app = app_with(
        templates,
        "note.txt",
        {"message": "gone"},
        status_code=410,
        headers={"x-page": "yes"},
        background=BackgroundTask(ran.append, "bg"),
    )
    async with AsyncTestClient(app) as http:
        response = await http.get("/page")
        await http.wait_idle()
    assert (response.status_code, response.text, response.headers["x-page"]) == (410, "gone", "yes")
    assert ran == ["bg"]


async def test_context_processors(template_dir: Path) -> None:
    def site(request: Request) -> dict[str, Any]:
        return {"site": request.url.hostname}

    def user(request: Request) -> dict[str, Any]:
        return {"user": request.headers.get("x-user", "anonymous")}

    templates = Jinja2Templates(directory=template_dir, context_processors=[site, user])
    app = app_with(templates, "user.html", {})
    async with AsyncTestClient(app) as http:
        response = await http.get("/page", headers={"x-user": "ada"})
    assert response.text == "ada on testserver"


async def test_response_keeps_template_and_context(template_dir: Path) -> None:
    templates = Jinja2Templates(directory=template_dir)
    seen: list[Any] = []

    async def page(request: Request) -> Response:
        response = templates.TemplateResponse(request, "note.txt", {"message": "hi"})
        seen.append(response)
        return response

    async with AsyncTestClient(App(routes=[Route("/", page)])) as http:
        await http.get("/")
    response = seen[0]
    assert response.template.name == "note.txt"
    assert response.context["message"] == "hi"
    assert isinstance(response.context["request"], Request)


async def test_async_rendering(template_dir: Path) -> None:
    async def items() -> Any:
        for item in ("a", "b"):
            yield item

    templates = Jinja2Templates(directory=template_dir, enable_async=True)
    assert templates.env.is_async
    app = app_with(templates, "slow.html", {"items": items})
    async with AsyncTestClient(app) as http:
        response = await http.get("/page")
    assert response.text == "a;b;"
    assert response.headers["content-length"] == "4"


async def test_ready_environment(template_dir: Path) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(template_dir), autoescape=True)
    templates = Jinja2Templates(env=env)
    assert templates.env is env
    assert "url_for" in env.globals
    app = app_with(templates, "note.txt", {"message": "<b>"})
    async with AsyncTestClient(app) as http:
        response = await http.get("/page")
    assert response.text == "&lt;b&gt;"


def test_directory_or_env_but_not_both(template_dir: Path) -> None:
    with pytest.raises(TypeError):
        Jinja2Templates()
    with pytest.raises(TypeError):
        Jinja2Templates(directory=template_dir, env=jinja2.Environment())
    with pytest.raises(TypeError):
        Jinja2Templates(env=jinja2.Environment(), enable_async=True)


def test_several_directories(template_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "extra.html").write_text("extra")
    templates = Jinja2Templates(directory=[other, template_dir])
    assert templates.get_template("extra.html").render() == "extra"
    assert templates.get_template("note.txt").render(message="m") == "m"


def test_missing_template(template_dir: Path) -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        Jinja2Templates(directory=template_dir).get_template("nope.html")
