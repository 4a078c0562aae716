import functools
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.convertors import CONVERTOR_TYPES, Convertor, register_url_convertor
from toolkit.middleware import Middleware
from toolkit.requests import Request
from toolkit.responses import JSONResponse, PlainTextResponse, Response
from toolkit.routing import (
    BaseRoute,
    Host,
    Match,
    Mount,
    NoMatchFound,
    Route,
    Router,
    compile_path,
    get_route_path,
)
from toolkit.types import ASGIApp, Message, Receive, Scope, Send


def text(body: str) -> Any:
    """An endpoint answering ``body``."""

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(body)

    return endpoint


async def params(request: Request) -> Response:
    """Echo the path parameters with their Python type names."""
    return JSONResponse({k: [str(v), type(v).__name__] for k, v in request.path_params.items()})


async def scope_paths(scope: Scope, receive: Receive, send: Send) -> None:
    """A raw ASGI app echoing the path and root_path it was given."""
    await JSONResponse({"path": scope["path"], "root_path": scope["root_path"]})(
        scope, receive, send
    )


# ----------------------------------------------------------------------------- matching


async def test_static_and_parametrized_routes(open_client: OpenClient) -> None:
    app = App(routes=[Route("/", text("home")), Route("/users/{name}", params)])
    async with open_client(app) as client:
        assert (await client.get("/")).text == "home"
        assert (await client.get("/users/ada")).json() == {"name": ["ada", "str"]}
        assert (await client.get("/missing")).status_code == 404
        assert (await client.get("/users/ada/extra")).status_code == 404


async def test_every_builtin_convertor(open_client: OpenClient) -> None:
    app = App(
        routes=[
            Route("/str/{value:str}", params),
            Route("/int/{value:int}", params),
            Route("/float/{value:float}", params),
            Route("/path/{value:path}", params),
            Route("/uuid/{value:uuid}", params),
        ]
    )
    some_uuid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    async with open_client(app) as client:
        assert (await client.get("/str/a b")).json() == {"value": ["a b", "str"]}
        assert (await client.get("/int/0042")).json() == {"value": ["42", "int"]}
        assert (await client.get("/float/2.5")).json() == {"value": ["2.5", "float"]}
        assert (await client.get("/path/a/b/c.txt")).json() == {"value": ["a/b/c.txt", "str"]}
        assert (await client.get("/path/")).json() == {"value": ["", "str"]}
        response = await client.get(f"/uuid/{some_uuid.hex}")
        assert response.json() == {"value": [str(some_uuid), "UUID"]}


@pytest.mark.parametrize(
    "path",
    ["/int/abc", "/int/-1", "/int/" + "1" * 5000, "/float/1e5", "/float/" + "9" * 400, "/uuid/x"],
)
async def test_value_a_convertor_refuses_is_not_found(open_client: OpenClient, path: str) -> None:
    app = App(
        routes=[
            Route("/int/{value:int}", params),
            Route("/float/{value:float}", params),
            Route("/uuid/{value:uuid}", params),
        ]
    )
    async with open_client(app) as client:
        assert (await client.get(path)).status_code == 404


class EvenConvertor(Convertor[int]):
    """Matches digits, but only converts even numbers."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        number = int(value)
        if number % 2:
            raise ValueError("odd")
        return number

    def to_string(self, value: int) -> str:
        return str(value)


@pytest.fixture
def even_convertor() -> Iterator[None]:
    register_url_convertor("even", EvenConvertor())
    yield
    del CONVERTOR_TYPES["even"]


@pytest.mark.usefixtures("even_convertor")
async def test_registered_convertor_converts_and_refuses(open_client: OpenClient) -> None:
    app = App(
        routes=[
            Route("/n/{value:even}", params, name="even"),
            Route("/n/{value}", text("fallback")),
        ]
    )
    async with open_client(app) as client:
        assert (await client.get("/n/4")).json() == {"value": ["4", "int"]}
        # A convertor refusing the value makes the route not match: the next one is tried.
        assert (await client.get("/n/3")).text == "fallback"
    assert app.url_path_for("even", value=8) == "/n/8"


async def test_routes_are_tried_in_order_first_full_match_wins(open_client: OpenClient) -> None:
    app = App(
        routes=[
            Route("/users/{id}", text("by id")),
            Route("/users/me", text("me")),
            Route("/items/me", text("me")),
            Route("/items/{id}", text("by id")),
        ]
    )
    async with open_client(app) as client:
        assert (await client.get("/users/me")).text == "by id"
        assert (await client.get("/items/me")).text == "me"
        assert (await client.get("/items/7")).text == "by id"


async def test_method_not_allowed_lists_allowed_methods(open_client: OpenClient) -> None:
    app = App(
        routes=[
            Route("/get", text("got")),
            Route("/form", text("posted"), methods=["post", "PUT"]),
        ]
    )
    async with open_client(app) as client:
        response = await client.post("/get")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"
        response = await client.get("/form")
        assert response.status_code == 405
        assert response.headers["allow"] == "POST, PUT"
        assert (await client.put("/form")).text == "posted"


async def test_head_is_allowed_for_get_and_has_no_body(open_client: OpenClient) -> None:
    app = App(routes=[Route("/", text("hello"))])
    async with open_client(app) as client:
        response = await client.head("/")
        assert response.status_code == 200
        assert response.content == b""
        assert response.headers["content-length"] == "5"


async def test_same_path_different_methods_in_two_routes(open_client: OpenClient) -> None:
    # A path match with the wrong method does not stop the search for a full match.
    app = App(
        routes=[
            Route("/items", text("list"), methods=["GET"]),
            Route("/items", text("create"), methods=["POST"]),
        ]
    )
    async with open_client(app) as client:
        assert (await client.get("/items")).text == "list"
        assert (await client.post("/items")).text == "create"
        assert (await client.delete("/items")).status_code == 405


async def test_router_outside_an_app_answers_404_and_405_itself(open_client: OpenClient) -> None:
    router = Router(routes=[Route("/", text("home"))])
    async with open_client(router) as client:
        response = await client.get("/nope")
        assert (response.status_code, response.text) == (404, "Not Found")
        response = await client.post("/")
        assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD")


# ----------------------------------------------------------------------------- slashes


async def test_redirect_slashes_both_ways(open_client: OpenClient) -> None:
    app = App(routes=[Route("/no-slash", text("a")), Route("/slash/", text("b"))])
    async with open_client(app) as client:
        response = await client.get("/no-slash/?q=1", follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == "http://testserver/no-slash?q=1"
        response = await client.get("/slash", follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == "http://testserver/slash/"
        assert (await client.get("/slash")).text == "b"


async def test_redirect_slashes_disabled(open_client: OpenClient) -> None:
    router = Router(routes=[Route("/a", text("a"))], redirect_slashes=False)
    async with open_client(router) as client:
        assert (await client.get("/a/", follow_redirects=False)).status_code == 404


async def test_redirect_slashes_inside_a_mount(open_client: OpenClient) -> None:
    app = App(routes=[Mount("/api", routes=[Route("/users", text("users"))])])
    async with open_client(app) as client:
        response = await client.get("/api/users/", follow_redirects=False)
        assert response.headers["location"] == "http://testserver/api/users"


# ----------------------------------------------------------------------------- mounts and hosts


async def test_mount_routes(open_client: OpenClient) -> None:
    app = App(routes=[Mount("/api", routes=[Route("/users/{id:int}", params)])])
    async with open_client(app) as client:
        assert (await client.get("/api/users/3")).json() == {"id": ["3", "int"]}
        assert (await client.get("/api/other")).status_code == 404
        assert (await client.get("/users/3")).status_code == 404


async def test_mounted_asgi_app_sees_root_path_and_full_path(open_client: OpenClient) -> None:
    app = App(routes=[Mount("/static", app=scope_paths)])
    async with open_client(app) as client:
        response = await client.get("/static/css/site.css")
        assert response.json() == {"path": "/static/css/site.css", "root_path": "/static"}
        # The bare prefix is redirected to the mount's root.
        response = await client.get("/static", follow_redirects=False)
        assert response.headers["location"] == "http://testserver/static/"


async def test_mount_under_client_root_path(open_client: OpenClient) -> None:
    app = App(routes=[Mount("/static", app=scope_paths)])
    async with open_client(app, root_path="/prefix") as client:
        response = await client.get("/prefix/static/x")
        assert response.json() == {"path": "/prefix/static/x", "root_path": "/prefix/static"}


async def test_nested_mounts_and_params_on_the_way(open_client: OpenClient) -> None:
    inner = Mount("/projects/{project}", routes=[Route("/files/{name:path}", params)])
    app = App(routes=[Mount("/orgs/{org}", routes=[inner])])
    async with open_client(app) as client:
        response = await client.get("/orgs/acme/projects/web/files/a/b.txt")
        assert response.json() == {
            "org": ["acme", "str"],
            "project": ["web", "str"],
            "name": ["a/b.txt", "str"],
        }


async def test_host_routing(open_client: OpenClient) -> None:
    api = Router(routes=[Route("/", params)])
    app = App(
        routes=[
            Host("{tenant}.example.org", app=api, name="tenants"),
            Host("example.org", app=Router(routes=[Route("/", text("main"))])),
            Route("/", text("any host")),
        ]
    )
    async with open_client(app) as client:
        response = await client.get("/", headers={"host": "acme.example.org:8000"})
        assert response.json() == {"tenant": ["acme", "str"]}
        assert (await client.get("/", headers={"host": "example.org"})).text == "main"
        assert (await client.get("/", headers={"host": "other.net"})).text == "any host"


# ----------------------------------------------------------------------------- endpoints


class Greeter:
    def __init__(self, greeting: str) -> None:
        self.greeting = greeting

    async def greet(self, request: Request) -> Response:
        return PlainTextResponse(f"{self.greeting} {request.path_params['name']}")

    def greet_sync(self, request: Request) -> Response:
        return PlainTextResponse(f"{self.greeting}, {request.path_params['name']}")


async def greet(request: Request, greeting: str) -> Response:
    return PlainTextResponse(f"{greeting} {request.path_params['name']}")


def greet_sync(request: Request, greeting: str) -> Response:
    return PlainTextResponse(f"{greeting}, {request.path_params['name']}")


async def test_partials_and_bound_methods_are_endpoints(open_client: OpenClient) -> None:
    greeter = Greeter("hi")
    app = App(
        routes=[
            Route("/partial/{name}", functools.partial(greet, greeting="hello")),
            Route("/partial-sync/{name}", functools.partial(greet_sync, greeting="hello")),
            Route("/method/{name}", greeter.greet),
            Route("/method-sync/{name}", greeter.greet_sync),
        ]
    )
    async with open_client(app) as client:
        assert (await client.get("/partial/ada")).text == "hello ada"
        assert (await client.get("/partial-sync/ada")).text == "hello, ada"
        assert (await client.get("/method/ada")).text == "hi ada"
        assert (await client.get("/method-sync/ada")).text == "hi, ada"
        # Function endpoints default to GET (and HEAD) only.
        assert (await client.post("/method/ada")).status_code == 405
    assert [route.name for route in app.routes[2:]] == ["greet", "greet_sync"]


async def test_sync_endpoints_run_in_a_worker_thread(open_client: OpenClient) -> None:
    threads: dict[str, int] = {}

    async def on_trio(request: Request) -> Response:
        threads["trio"] = threading.get_ident()
        return PlainTextResponse("")

    def blocking(request: Request) -> Response:
        threads["sync"] = threading.get_ident()
        with pytest.raises(RuntimeError):
            trio.lowlevel.current_task()  # not inside trio...
        trio.from_thread.check_cancelled()  # ...but in one of trio's worker threads
        return PlainTextResponse("done")

    app = App(routes=[Route("/trio", on_trio), Route("/sync", blocking)])
    async with open_client(app) as client:
        await client.get("/trio")
        assert (await client.get("/sync")).text == "done"
    assert threads["sync"] != threads["trio"]


# ----------------------------------------------------------------------------- URLs


def url_for(name: str, **path_params: Any) -> Any:
    """An endpoint answering ``request.url_for(name, **path_params)``."""

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(str(request.url_for(name, **path_params)))

    return endpoint


def url_app() -> App:
    users = [
        Route("/", text("list"), name="list"),
        Route("/{id:int}", text("one"), name="detail"),
    ]
    return App(
        routes=[
            Route("/", url_for("api:users:detail", id=5), name="home"),
            Route("/float/{x:float}", text(""), name="float"),
            Mount("/api", name="api", routes=[Mount("/users", name="users", routes=users)]),
            Mount("/static", app=scope_paths, name="static"),
            Mount("/plain", routes=[Route("/thing", url_for("home"), name="thing")]),
            Mount("/orgs/{org}", name="orgs", routes=[Route("/{repo}", text(""), name="repo")]),
            Host(
                "{sub}.example.org",
                name="site",
                app=Router([Route("/page", text(""), name="page")]),
            ),
        ]
    )


def test_url_path_for_through_mounts_and_hosts() -> None:
    app = url_app()
    assert app.url_path_for("home") == "/"
    assert app.url_path_for("float", x=0.5) == "/float/0.5"
    assert app.url_path_for("api:users:list") == "/api/users/"
    assert app.url_path_for("api:users:detail", id=7) == "/api/users/7"
    assert app.url_path_for("static", path="/css/a.css") == "/static/css/a.css"
    # An unnamed mount adds no namespace.
    assert app.url_path_for("thing") == "/plain/thing"
    assert app.url_path_for("orgs:repo", org="acme", repo="web") == "/orgs/acme/web"
    assert app.url_path_for("orgs", org="acme", path="/x") == "/orgs/acme/x"
    url = app.url_path_for("site:page", sub="docs")
    assert (url, url.host) == ("/page", "docs.example.org")


@pytest.mark.parametrize(
    ("name", "path_params"),
    [
        ("nope", {}),
        ("home", {"extra": 1}),
        ("api:users:detail", {}),
        ("api:users:detail", {"id": 1, "other": 2}),
        ("users:detail", {"id": 1}),
        ("site:page", {}),
        ("orgs:repo", {"repo": "web"}),
        ("orgs", {"path": "/x"}),
    ],
)
def test_url_path_for_raises_no_match_found(name: str, path_params: dict[str, Any]) -> None:
    with pytest.raises(NoMatchFound, match=name):
        url_app().url_path_for(name, **path_params)


async def test_request_url_for_is_absolute_and_respects_root_path(
    open_client: OpenClient,
) -> None:
    async with open_client(url_app()) as client:
        assert (await client.get("/")).text == "http://testserver/api/users/5"
        assert (await client.get("/plain/thing")).text == "http://testserver/"
    async with open_client(url_app(), root_path="/app") as client:
        assert (await client.get("/app/")).text == "http://testserver/app/api/users/5"
        assert (await client.get("/app/plain/thing")).text == "http://testserver/app/"


async def test_url_for_a_host_route_uses_its_host(open_client: OpenClient) -> None:
    app = url_app()
    app.add_route("/link", url_for("site:page", sub="docs"))
    async with open_client(app) as client:
        assert (await client.get("/link")).text == "http://docs.example.org/page"


# ----------------------------------------------------------------------------- compile_path


def test_compile_path() -> None:
    regex, path_format, convertors = compile_path("/users/{id:int}/files/{name}")
    assert path_format == "/users/{id}/files/{name}"
    assert set(convertors) == {"id", "name"}
    match = regex.match("/users/12/files/a.txt")
    assert match is not None
    assert match.groupdict() == {"id": "12", "name": "a.txt"}
    assert regex.match("/users/12/files/a.txt/more") is None
    # Literal parts are not regex syntax.
    assert compile_path("/a.b")[0].match("/aXb") is None


def test_compile_host_ignores_the_port() -> None:
    regex, host_format, _ = compile_path("{sub}.example.org:8000")
    assert host_format == "{sub}.example.org:8000"
    assert regex.match("api.example.org") is not None


def test_compile_path_refuses_unknown_convertor() -> None:
    with pytest.raises(ValueError, match="Unknown path convertor 'nope'"):
        compile_path("/{x:nope}")


def test_compile_path_refuses_duplicated_params() -> None:
    with pytest.raises(ValueError, match="Duplicated param name id at path"):
        compile_path("/{id}/{id:int}")
    with pytest.raises(ValueError, match="Duplicated param names a, b at path"):
        compile_path("/{a}/{b}/{a}/{b}")


# ----------------------------------------------------------------------------- middleware


class AddHeader:
    """A pure ASGI middleware adding ``x-layer: <label>`` to every response."""

    def __init__(self, app: ASGIApp, label: str) -> None:
        self.app = app
        self.label = label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-layer", self.label.encode())]
            await send(message)

        await self.app(scope, receive, send_with_header)


async def test_route_mount_and_router_middleware(open_client: OpenClient) -> None:
    app = App(
        routes=[
            Route("/wrapped", text(""), middleware=[Middleware(AddHeader, label="route")]),
            Route("/bare", text("")),
            Mount(
                "/mounted",
                routes=[Route("/", text(""))],
                middleware=[Middleware(AddHeader, label="mount")],
            ),
        ]
    )
    async with open_client(app) as client:
        assert (await client.get("/wrapped")).headers["x-layer"] == "route"
        assert "x-layer" not in (await client.get("/bare")).headers
        assert (await client.get("/mounted/")).headers["x-layer"] == "mount"
        # Route middleware only runs for a matching route, not for a 405 answer.
        assert "x-layer" not in (await client.post("/wrapped")).headers

    router = Router(
        routes=[Route("/", text(""))],
        middleware=[Middleware(AddHeader, label="outer"), Middleware(AddHeader, label="inner")],
    )
    async with open_client(router) as client:
        assert (await client.get("/")).headers.get_list("x-layer") == ["inner", "outer"]


# ----------------------------------------------------------------------------- a live route list


async def test_router_sees_routes_changed_after_first_request(open_client: OpenClient) -> None:
    app = App(routes=[Route("/a", text("a"))])
    async with open_client(app) as client:
        assert (await client.get("/b")).status_code == 404
        app.router.routes.append(Route("/b", text("b")))
        assert (await client.get("/b")).text == "b"
        app.add_route("/c/{x}", text("c"))
        assert (await client.get("/c/1")).text == "c"
        app.routes.insert(0, Route("/c/{x}", text("first")))
        assert (await client.get("/c/1")).text == "first"
        app.routes[0] = Route("/c/{x}", text("replaced"))
        assert (await client.get("/c/1")).text == "replaced"
        del app.routes[0]
        assert (await client.get("/c/1")).text == "c"
        app.routes.remove(app.routes[0])
        assert (await client.get("/a")).status_code == 404
        app.router.routes = [Route("/only", text("only"))]
        assert (await client.get("/only")).text == "only"
        assert (await client.get("/b")).status_code == 404
        app.routes.extend([Route("/z", text("z"))])
        assert (await client.get("/z")).text == "z"
        app.routes.clear()
        assert (await client.get("/z")).status_code == 404


async def test_mounted_router_sees_routes_added_later(open_client: OpenClient) -> None:
    mount = Mount("/api", routes=[])
    app = App(routes=[mount])
    async with open_client(app) as client:
        assert (await client.get("/api/x")).status_code == 404
        mount.routes.append(Route("/x", text("x")))
        assert (await client.get("/api/x")).text == "x"


# ----------------------------------------------------------------------------- the index


class Recorder:
    """An ASGI endpoint that answers its label, so a response tells which route ran."""

    def __init__(self, label: str) -> None:
        self.label = label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(self.label)(scope, receive, send)


SEGMENTS = ["users", "me", "a", "1", "2.5", "12345678123456781234567812345678", ""]
TEMPLATES = ["users", "me", "a", "{x}", "{x:int}", "{x:float}", "{x:uuid}", "{x:path}", "a{x}"]


@st.composite
def route_tables(draw: st.DrawFn, label: str = "") -> list[BaseRoute]:
    """A few routes over a small vocabulary, so that paths often match several of them."""
    routes: list[BaseRoute] = []
    for position in range(draw(st.integers(1, 5))):
        route_label = f"{label}{position}"
        parts = draw(st.lists(st.sampled_from(TEMPLATES), max_size=3))
        parts = _unique_params(parts)
        path = ("/" + "/".join(parts) + draw(st.sampled_from(["", "/"]))).replace("//", "/")
        kinds = ["get", "post", "any", "mount"] if not label else ["get", "post", "any"]
        kind = draw(st.sampled_from(kinds))
        if kind == "mount":
            inner = draw(route_tables(label=route_label + "."))
            routes.append(Mount("" if path == "/" else path.rstrip("/"), routes=inner))
        elif kind == "any":
            routes.append(Route(path, Recorder(route_label)))
        else:
            methods = ["GET"] if kind == "get" else ["POST"]
            routes.append(Route(path, Recorder(route_label), methods=methods))
    return routes


def _unique_params(parts: list[str]) -> list[str]:
    """Number the ``{x...}`` parameters so a template never repeats a name."""
    numbered = []
    for index, part in enumerate(parts):
        numbered.append(part.replace("{x", f"{{x{index}") if "{x" in part else part)
    return numbered


def naive_outcome(routes: list[BaseRoute], scope: Scope) -> tuple[int, str] | None:
    """What a router without an index answers: try each route's ``matches`` in order."""
    partial: BaseRoute | None = None
    for route in routes:
        match, child_scope = route.matches(scope)
        if match is Match.FULL:
            if isinstance(route, Mount):
                inner_scope = {**scope, **child_scope}
                outcome = naive_outcome(route.routes, inner_scope)
                return naive_redirect(route.routes, inner_scope) if outcome is None else outcome
            assert isinstance(route, Route) and isinstance(route.endpoint, Recorder)
            return 200, route.endpoint.label
        if match is Match.PARTIAL and partial is None:
            partial = route
    if partial is not None:
        assert isinstance(partial, Route)
        return 405, ", ".join(sorted(partial.methods or ()))
    return None


def naive_redirect(routes: list[BaseRoute], scope: Scope) -> tuple[int, str]:
    """A mounted router (redirect_slashes on) redirects when the other-slash path matches."""
    route_path = get_route_path(scope)
    if route_path == "/":
        return 404, ""
    path = scope["path"].rstrip("/") if route_path.endswith("/") else scope["path"] + "/"
    other = {**scope, "path": path}
    if any(route.matches(other)[0] is not Match.NONE for route in routes):
        return 307, path
    return 404, ""


async def run_router(router: Router, scope: Scope) -> tuple[int, str]:
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await router(scope, receive, send)
    status = messages[0]["status"]
    headers = dict(messages[0]["headers"])
    if status == 405:
        return 405, headers[b"allow"].decode()
    if status == 307:
        return 307, headers[b"location"].decode().removeprefix("http://testserver")
    return status, messages[1]["body"].decode() if status == 200 else ""


def http_scope(method: str, path: str) -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
    }


async def run_all(router: Router, scopes: list[Scope]) -> list[tuple[int, str]]:
    return [await run_router(router, scope) for scope in scopes]


@settings(max_examples=150, deadline=None)
@given(
    routes=route_tables(),
    requests=st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST"]),
            st.lists(st.sampled_from(SEGMENTS), max_size=4),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_index_never_changes_which_route_matches(
    routes: list[BaseRoute], requests: list[tuple[str, list[str]]]
) -> None:
    scopes = [http_scope(method, "/" + "/".join(segments)) for method, segments in requests]
    expected = [naive_outcome(routes, dict(scope)) or (404, "") for scope in scopes]
    router = Router(routes=routes, redirect_slashes=False)
    assert trio.run(run_all, router, scopes) == expected
