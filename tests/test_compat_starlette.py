"""Starlette code runs on toolkit with only its imports renamed.

``SOURCE`` is an application and its tests written the way Starlette's documentation shows
them, importing from ``starlette``. Each test below runs it twice: as written, against Starlette
(skipped if Starlette is not installed), and rewritten (``starlette`` -> ``toolkit``,
``Starlette`` -> ``App``) against toolkit. The assertions are the same code for both.
"""

from __future__ import annotations

import importlib.util
import re
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

SOURCE = '''
import contextlib
import json

import pytest

from starlette.applications import Starlette
from starlette.background import BackgroundTask, BackgroundTasks
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Host, Mount, Route, Router
from starlette.testclient import TestClient

events = []


@contextlib.asynccontextmanager
async def lifespan(app):
    events.append("startup")
    yield {"greeting": "hello"}
    events.append("shutdown")


async def homepage(request):
    return PlainTextResponse(f"{request.state.greeting}, world")


async def user(request):
    user_id = request.path_params["user_id"]
    return JSONResponse(
        {
            "id": user_id,
            "type": type(user_id).__name__,
            "url": str(request.url_for("api:user", user_id=user_id)),
        }
    )


async def tenant(request):
    return PlainTextResponse(request.path_params["tenant"])


async def user_me(request):
    return PlainTextResponse("me")


async def search(request):
    return JSONResponse(
        {
            "q": request.query_params.get("q"),
            "tags": request.query_params.getlist("tag"),
            "agent": request.headers["user-agent"],
            "client": request.client.host,
            "method": request.method,
            "url": str(request.url),
        }
    )


async def echo(request):
    data = await request.json()
    return JSONResponse({"received": data, "length": len(await request.body())})


async def set_cookie(request):
    response = PlainTextResponse("cookie set")
    response.set_cookie("session", "abc123", max_age=60, httponly=True)
    return response


async def read_cookie(request):
    return PlainTextResponse(request.cookies.get("session", "none"))


async def clear_cookie(request):
    response = PlainTextResponse("cookie cleared")
    response.delete_cookie("session")
    return response


async def old_page(request):
    return RedirectResponse(url=request.url_for("homepage"), status_code=301)


async def numbers(request):
    async def generate():
        for number in range(3):
            yield f"{number}\\n"

    return StreamingResponse(generate(), media_type="text/plain")


def lines(request):
    return StreamingResponse(iter(["a", "b", "c"]), media_type="text/plain")


def sync_page(request):
    return HTMLResponse("<h1>sync</h1>")


async def teapot(request):
    raise HTTPException(status_code=418, detail="I'm a teapot", headers={"x-tea": "earl grey"})


async def broken(request):
    raise RuntimeError("something broke")


async def empty(request):
    return Response(status_code=204)


sent = []


async def send_email(to, subject):
    sent.append((to, subject))


def write_log(message):
    sent.append(("log", message))


async def signup(request):
    body = await request.json()
    tasks = BackgroundTasks()
    tasks.add_task(send_email, body["email"], subject="Welcome")
    tasks.add_task(write_log, "signed up")
    return JSONResponse({"status": "ok"}, background=tasks)


async def ping(request):
    return PlainTextResponse("pong", background=BackgroundTask(write_log, "pinged"))


class Counter(HTTPEndpoint):
    async def get(self, request):
        return JSONResponse({"count": request.app.state.count})

    async def post(self, request):
        request.app.state.count += 1
        return JSONResponse({"count": request.app.state.count}, status_code=201)


async def not_found(request, exc):
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)


async def server_error(request, exc):
    return PlainTextResponse("custom 500", status_code=500)


class PoweredBy:
    """A pure ASGI middleware, as the docs write one."""

    def __init__(self, app, name):
        self.app = app
        self.name = name

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-powered-by", self.name.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)


async def static_app(scope, receive, send):
    response = JSONResponse({"path": scope["path"], "root_path": scope["root_path"]})
    await response(scope, receive, send)


api = Router(
    routes=[
        Route("/users/me", user_me),
        Route("/users/{user_id:int}", user, name="user"),
    ]
)

routes = [
    Route("/", homepage, name="homepage"),
    Route("/search", search),
    Route("/echo", echo, methods=["POST"]),
    Route("/cookie/set", set_cookie),
    Route("/cookie/read", read_cookie),
    Route("/cookie/clear", clear_cookie),
    Route("/old", old_page),
    Route("/numbers", numbers),
    Route("/lines", lines),
    Route("/sync", sync_page),
    Route("/teapot", teapot),
    Route("/broken", broken),
    Route("/empty", empty),
    Route("/signup", signup, methods=["POST"]),
    Route("/ping", ping),
    Route("/counter", Counter),
    Mount("/api", app=api, name="api"),
    Mount("/static", app=static_app, name="static"),
    Host("{tenant}.example.com", app=Router([Route("/tenant", tenant)]), name="tenants"),
]

app = Starlette(
    debug=False,
    routes=routes,
    middleware=[Middleware(PoweredBy, name="toolkit-compat")],
    exception_handlers={404: not_found, 500: server_error},
    lifespan=lifespan,
)
app.state.count = 0


def test_lifespan_and_state():
    events.clear()
    with TestClient(app) as client:
        assert events == ["startup"]
        response = client.get("/")
        assert response.status_code == 200
        assert response.text == "hello, world"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["x-powered-by"] == "toolkit-compat"
    assert events == ["startup", "shutdown"]


def test_routing_and_url_for():
    client = TestClient(app)
    response = client.get("/api/users/42")
    assert response.json() == {
        "id": 42,
        "type": "int",
        "url": "http://testserver/api/users/42",
    }
    assert client.get("/api/users/me").text == "me"
    assert app.url_path_for("api:user", user_id=7) == "/api/users/7"
    assert app.url_path_for("static", path="/css/site.css") == "/static/css/site.css"
    assert client.get("/static/css/site.css").json() == {
        "path": "/static/css/site.css",
        "root_path": "/static",
    }
    assert client.get("/tenant", headers={"host": "acme.example.com"}).text == "acme"
    assert client.get("/tenant").status_code == 404
    url = app.url_path_for("tenants:tenant", tenant="acme")
    assert (url, url.host) == ("/tenant", "acme.example.com")


def test_errors_and_methods():
    client = TestClient(app, raise_server_exceptions=False)
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
    response = client.get("/teapot")
    assert response.status_code == 418
    assert response.headers["x-tea"] == "earl grey"
    response = client.get("/broken")
    assert response.status_code == 500
    assert response.text == "custom 500"
    response = client.get("/echo")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    with pytest.raises(RuntimeError, match="something broke"):
        TestClient(app).get("/broken")


def test_redirects():
    client = TestClient(app)
    response = client.get("/old", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == "http://testserver/"
    response = client.get("/search/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "http://testserver/search"
    response = client.get("/search/?q=x")
    assert response.status_code == 200
    assert response.json()["q"] == "x"


def test_requests():
    client = TestClient(app)
    response = client.get("/search", params={"q": "trio", "tag": ["a", "b"]})
    assert response.json() == {
        "q": "trio",
        "tags": ["a", "b"],
        "agent": "testclient",
        "client": "testclient",
        "method": "GET",
        "url": "http://testserver/search?q=trio&tag=a&tag=b",
    }
    response = client.post("/echo", json={"hello": ["world"]})
    assert response.json() == {
        "received": {"hello": ["world"]},
        "length": len(response.request.content),
    }


def test_responses():
    client = TestClient(app)
    assert client.get("/numbers").text == "0\\n1\\n2\\n"
    assert client.get("/lines").text == "abc"
    response = client.get("/sync")
    assert response.text == "<h1>sync</h1>"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    response = client.get("/empty")
    assert response.status_code == 204
    assert response.content == b""
    assert "content-length" not in response.headers
    response = client.head("/sync")
    assert response.status_code == 200
    assert response.content == b""


def test_cookies():
    client = TestClient(app)
    response = client.get("/cookie/set")
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("session=abc123;")
    assert "HttpOnly" in set_cookie
    assert "Max-Age=60" in set_cookie
    assert client.cookies["session"] == "abc123"
    assert client.get("/cookie/read").text == "abc123"
    client.get("/cookie/clear")
    assert "session" not in client.cookies
    assert client.get("/cookie/read").text == "none"


def test_background_tasks():
    sent.clear()
    client = TestClient(app)
    response = client.post("/signup", json={"email": "ada@example.com"})
    assert response.json() == {"status": "ok"}
    assert client.get("/ping").text == "pong"
    assert sent == [("ada@example.com", "Welcome"), ("log", "signed up"), ("log", "pinged")]


def test_endpoint_class():
    app.state.count = 0
    client = TestClient(app)
    assert client.get("/counter").json() == {"count": 0}
    response = client.post("/counter")
    assert response.status_code == 201
    assert response.json() == {"count": 1}
    response = client.delete("/counter")
    assert response.status_code == 405
'''

TESTS = [
    "test_lifespan_and_state",
    "test_routing_and_url_for",
    "test_errors_and_methods",
    "test_redirects",
    "test_requests",
    "test_responses",
    "test_cookies",
    "test_background_tasks",
    "test_endpoint_class",
]


def to_toolkit(source: str) -> str:
    """The only change allowed: the imports' package and the application class's name."""
    return re.sub(r"\bStarlette\b", "App", re.sub(r"\bstarlette\b", "toolkit", source))


def load(framework: str) -> Any:
    """Run ``SOURCE`` for ``framework`` in a fresh namespace."""
    if framework == "starlette":
        if importlib.util.find_spec("starlette") is None:
            pytest.skip("Starlette is not installed")
        source = SOURCE
    else:
        source = to_toolkit(SOURCE)
    namespace: dict[str, Any] = {"__name__": f"compat_{framework}"}
    exec(compile(source, f"<{framework} compat app>", "exec"), namespace)
    return SimpleNamespace(**namespace)


def test_the_rewrite_touches_only_imports_and_the_app_class() -> None:
    rewritten = to_toolkit(SOURCE)
    assert "starlette" not in rewritten.lower()
    changed = [
        (before, after)
        for before, after in zip(SOURCE.splitlines(), rewritten.splitlines(), strict=True)
        if before != after
    ]
    assert changed
    for before, after in changed:
        assert before.startswith(("from starlette", "app = Starlette(")), before
        assert after.startswith(("from toolkit", "app = App(")), after


# Starlette's TestClient asks for httpx2; that is Starlette's business, not this comparison's.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")
@pytest.mark.parametrize("framework", ["starlette", "toolkit"])
@pytest.mark.parametrize("test_name", TESTS)
def test_same_code_same_behaviour(framework: str, test_name: str) -> None:
    module = load(framework)
    assert type(module.app).__module__ == f"{framework}.applications"
    getattr(module, test_name)()


# ----------------------------------------------------------------------------- the same route wins


class Label:
    """A framework-neutral ASGI endpoint answering its label."""

    def __init__(self, label: str) -> None:
        self.label = label

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": self.label.encode()})


TEMPLATES = ["users", "me", "a", "{x}", "{x:int}", "{x:float}", "{x:uuid}", "{x:path}", "a{x}"]
SEGMENTS = ["users", "me", "a", "1", "2.5", "12345678123456781234567812345678", "", "a1"]

# A route table as data, to build with either framework: ("route", path, methods, label) or
# ("mount", path, [entries]).
Entry = tuple[Any, ...]


@st.composite
def route_specs(draw: st.DrawFn, label: str = "") -> list[Entry]:
    entries: list[Entry] = []
    for position in range(draw(st.integers(1, 5))):
        entry_label = f"{label}{position}"
        parts = draw(st.lists(st.sampled_from(TEMPLATES), max_size=3))
        parts = [part.replace("{x", f"{{x{index}") for index, part in enumerate(parts)]
        path = ("/" + "/".join(parts) + draw(st.sampled_from(["", "/"]))).replace("//", "/")
        methods = draw(st.sampled_from([None, ("GET",), ("POST",), ("GET", "PUT")]))
        if not label and draw(st.booleans()):
            inner = draw(route_specs(label=entry_label + "."))
            entries.append(("mount", "" if path == "/" else path.rstrip("/"), inner))
        else:
            entries.append(("route", path, methods, entry_label))
    return entries


def build(entries: list[Entry], routing: Any) -> list[Any]:
    routes = []
    for kind, path, *rest in entries:
        if kind == "mount":
            routes.append(routing.Mount(path, routes=build(rest[0], routing)))
        else:
            methods, label = rest
            routes.append(routing.Route(path, Label(label), methods=methods))
    return routes


async def outcomes(router: Any, requests: list[tuple[str, str]]) -> list[tuple[int, str]]:
    results = []
    for method, path in requests:
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any], messages: list[dict[str, Any]] = messages) -> None:
            messages.append(message)

        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver")],
            "scheme": "http",
            "server": ("testserver", 80),
        }
        await router(scope, receive, send)
        headers = dict(messages[0]["headers"])
        status = messages[0]["status"]
        detail = {405: headers.get(b"allow"), 307: headers.get(b"location")}.get(status)
        if status == 405:  # Starlette lists the methods in set order; toolkit sorts them
            detail = b", ".join(sorted(headers[b"allow"].split(b", ")))
        # toolkit sends no body for HEAD; Starlette leaves that to the server.
        body = b"" if method == "HEAD" else b"".join(m.get("body", b"") for m in messages[1:])
        results.append((status, (detail or body).decode()))
    return results


@pytest.mark.skipif(importlib.util.find_spec("starlette") is None, reason="needs Starlette")
@settings(max_examples=100, deadline=None)
@given(
    entries=route_specs(),
    requests=st.lists(
        st.tuples(
            st.sampled_from(["GET", "HEAD", "POST", "PUT"]),
            st.lists(st.sampled_from(SEGMENTS), max_size=4).map(lambda s: "/" + "/".join(s)),
        ),
        min_size=1,
        max_size=8,
    ),
    redirect_slashes=st.booleans(),
)
def test_routers_pick_the_same_route_as_starlette(
    entries: list[Entry], requests: list[tuple[str, str]], redirect_slashes: bool
) -> None:
    import starlette.routing

    import toolkit.routing

    results = [
        trio.run(
            outcomes,
            routing.Router(build(entries, routing), redirect_slashes=redirect_slashes),
            requests,
        )
        for routing in (starlette.routing, toolkit.routing)
    ]
    assert results[1] == results[0]
