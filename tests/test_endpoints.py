import threading

import trio

from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.endpoints import HTTPEndpoint
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response
from toolkit.routing import Route, Router


class Items(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        return PlainTextResponse(f"get {request.path_params.get('id', 'all')}")

    async def post(self, request: Request) -> Response:
        return PlainTextResponse(f"post {(await request.body()).decode()}", status_code=201)

    def delete(self, request: Request) -> Response:
        # A sync method: it runs in a worker thread, not in trio's.
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            return PlainTextResponse(f"deleted in {threading.current_thread().name}")
        return PlainTextResponse("ran on the trio thread", status_code=500)


class WithHead(HTTPEndpoint):
    async def get(self, request: Request) -> Response:
        return PlainTextResponse("body from get", headers={"x-from": "get"})

    async def head(self, request: Request) -> Response:
        return PlainTextResponse("", headers={"x-from": "head"})


def items_app() -> App:
    return App(routes=[Route("/items", Items), Route("/items/{id:int}", Items)])


async def test_dispatch_per_method(open_client: OpenClient) -> None:
    async with open_client(items_app()) as client:
        assert (await client.get("/items")).text == "get all"
        assert (await client.get("/items/3")).text == "get 3"
        response = await client.post("/items", content=b"thing")
        assert (response.status_code, response.text) == (201, "post thing")


async def test_sync_methods_run_in_a_worker_thread(open_client: OpenClient) -> None:
    async with open_client(items_app()) as client:
        response = await client.delete("/items/3")
    assert response.status_code == 200
    assert response.text.startswith("deleted in ")


async def test_head_falls_back_to_get_without_a_body(open_client: OpenClient) -> None:
    app = App(routes=[Route("/items", Items), Route("/with-head", WithHead)])
    async with open_client(app) as client:
        response = await client.head("/items")
        assert (response.status_code, response.content) == (200, b"")
        assert response.headers["content-length"] == str(len("get all"))
        assert (await client.head("/with-head")).headers["x-from"] == "head"


async def test_unknown_verb_is_405_with_allow(open_client: OpenClient) -> None:
    async with open_client(items_app()) as client:
        for method in ("PUT", "PATCH", "OPTIONS", "BREW"):
            response = await client.request(method, "/items")
            assert response.status_code == 405, method
            assert response.headers["allow"] == "GET, HEAD, POST, DELETE"


async def test_methods_named_like_attributes_are_405_not_500(open_client: OpenClient) -> None:
    async with open_client(items_app()) as client:
        for method in ("DISPATCH", "SEND", "RECEIVE", "__INIT__", "METHOD_NOT_ALLOWED"):
            response = await client.request(method, "/items")
            assert response.status_code == 405, method


class Query(HTTPEndpoint):
    async def query(self, request: Request) -> Response:
        return PlainTextResponse(f"query {(await request.body()).decode()}")


async def test_query_verb_is_dispatched(open_client: OpenClient) -> None:
    async with open_client(App(routes=[Route("/", Query)])) as client:
        assert (await client.request("QUERY", "/", content=b"q")).text == "query q"
        assert (await client.get("/")).headers["allow"] == "QUERY"


async def test_405_outside_an_app_is_answered_by_the_endpoint(open_client: OpenClient) -> None:
    async with open_client(Router(routes=[Route("/", WithHead)])) as client:
        response = await client.post("/")
    assert (response.status_code, response.text) == (405, "Method Not Allowed")
    assert response.headers["allow"] == "GET, HEAD"


async def test_405_goes_through_the_apps_exception_handlers(open_client: OpenClient) -> None:
    async def handler(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("custom 405", status_code=405, headers={"allow": "GET, HEAD"})

    app = App(routes=[Route("/", WithHead)], exception_handlers={405: handler})
    async with open_client(app) as client:
        assert (await client.post("/")).text == "custom 405"


async def test_endpoint_can_be_used_as_a_plain_asgi_app(open_client: OpenClient) -> None:
    async with open_client(Items) as client:
        assert (await client.get("/anything")).text == "get all"
