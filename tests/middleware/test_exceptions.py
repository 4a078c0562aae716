"""toolkit.middleware.exceptions: HTTPException and registered handlers turned into responses.

Client tests run through both test clients (the sync one driven from a worker thread); the test
about a response that already started calls the middleware as a bare ASGI callable.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.exceptions import HTTPException
from toolkit.middleware.exceptions import ExceptionMiddleware
from toolkit.requests import MalformedJSON, Request
from toolkit.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from toolkit.routing import Route
from toolkit.types import Message, Receive, Scope, Send

# ----------------------------------------------------------------------------- endpoints


class PaymentError(Exception):
    """A domain error with a handler of its own."""


class CardDeclined(PaymentError):
    """A more specific domain error."""


async def raise_from_query(request: Request) -> Response:
    """Raises what the query asks for: ?status=N[&detail=...] or ?error=declined|payment|value."""
    params = request.query_params
    if "status" in params:
        headers = {"x-reason": params["reason"]} if "reason" in params else None
        raise HTTPException(int(params["status"]), params.get("detail"), headers=headers)
    error = params.get("error")
    if error == "declined":
        raise CardDeclined("card declined")
    if error == "payment":
        raise PaymentError("payment failed")
    if error == "value":
        raise ValueError("plain bug")
    return PlainTextResponse("no error")


def app_with(**options: Any) -> App:
    return App(routes=[Route("/", raise_from_query, methods=["GET", "POST"])], **options)


# ----------------------------------------------------------------------------- default handler


async def test_http_exception_default_answer(open_client: OpenClient) -> None:
    async with open_client(app_with()) as client:
        response = await client.get("/?status=418")
    assert response.status_code == 418
    assert response.text == "I'm a Teapot"
    assert response.headers.multi_items() == [
        ("content-length", "12"),
        ("content-type", "text/plain; charset=utf-8"),
    ]


async def test_http_exception_detail_and_headers(open_client: OpenClient) -> None:
    async with open_client(app_with()) as client:
        response = await client.get("/?status=401&detail=Log+in&reason=expired")
    assert response.status_code == 401
    assert response.text == "Log in"
    assert response.headers["x-reason"] == "expired"


@pytest.mark.parametrize("status_code", [204, 304])
async def test_bodyless_http_exceptions_have_no_body(
    open_client: OpenClient, status_code: int
) -> None:
    async with open_client(app_with()) as client:
        response = await client.get(f"/?status={status_code}&reason=cached")
    assert response.status_code == status_code
    assert response.content == b""
    assert response.headers.multi_items() == [("x-reason", "cached")]


async def test_method_not_allowed_carries_allow(open_client: OpenClient) -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = App(routes=[Route("/", endpoint)])
    async with open_client(app) as client:
        response = await client.post("/")
    assert response.status_code == 405
    assert response.text == "Method Not Allowed"
    assert response.headers["allow"] == "GET, HEAD"


async def test_not_found_through_the_default_handler(open_client: OpenClient) -> None:
    async with open_client(app_with()) as client:
        response = await client.get("/nowhere")
    assert (response.status_code, response.text) == (404, "Not Found")


# ----------------------------------------------------------------------------- handlers by status


async def test_handler_by_status_code(open_client: OpenClient) -> None:
    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"missing": request.url.path, "detail": exc.detail}, status_code=404)

    async with open_client(app_with(exception_handlers={404: not_found})) as client:
        unrouted = await client.get("/nowhere")
        raised = await client.get("/?status=404&detail=gone")
        other = await client.get("/?status=403")
    assert (unrouted.status_code, unrouted.json()) == (
        404,
        {"missing": "/nowhere", "detail": "Not Found"},
    )
    assert raised.json() == {"missing": "/", "detail": "gone"}
    assert (other.status_code, other.text) == (403, "Forbidden")


async def test_status_handler_gets_malformed_json_as_a_400(open_client: OpenClient) -> None:
    async def echo(request: Request) -> Response:
        return JSONResponse(await request.json())

    async def bad_request(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": type(exc).__name__}, status_code=400)

    app = App(routes=[Route("/", echo, methods=["POST"])], exception_handlers={400: bad_request})
    async with open_client(app) as client:
        response = await client.post("/", content=b"{oops")
    assert (response.status_code, response.json()) == (400, {"error": MalformedJSON.__name__})


async def test_status_handler_wins_over_class_handler(open_client: OpenClient) -> None:
    async def by_status(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("by status", status_code=404)

    async def by_class(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return PlainTextResponse("by class", status_code=exc.status_code)

    handlers = {HTTPException: by_class, 404: by_status}
    async with open_client(app_with(exception_handlers=handlers)) as client:
        assert (await client.get("/?status=404")).text == "by status"
        assert (await client.get("/?status=400")).text == "by class"


# ----------------------------------------------------------------------------- handlers by class


async def test_handler_by_class_and_most_specific_first(open_client: OpenClient) -> None:
    async def payment(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"payment: {exc}", status_code=402)

    async def declined(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"declined: {exc}", status_code=402)

    handlers = {PaymentError: payment, CardDeclined: declined}
    async with open_client(app_with(exception_handlers=handlers)) as client:
        assert (await client.get("/?error=payment")).text == "payment: payment failed"
        assert (await client.get("/?error=declined")).text == "declined: card declined"


async def test_subclass_uses_its_base_classes_handler(open_client: OpenClient) -> None:
    async def payment(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(type(exc).__name__, status_code=402)

    async with open_client(app_with(exception_handlers={PaymentError: payment})) as client:
        response = await client.get("/?error=declined")
    assert (response.status_code, response.text) == (402, "CardDeclined")


async def test_sync_handler_runs_in_a_worker_thread(open_client: OpenClient) -> None:
    threads: dict[str, int] = {}

    async def endpoint(request: Request) -> Response:
        threads["endpoint"] = threading.get_ident()
        raise PaymentError("sync")

    def handler(request: Request, exc: Exception) -> Response:
        threads["handler"] = threading.get_ident()
        return PlainTextResponse(f"sync handler: {exc}", status_code=402)

    app = App(routes=[Route("/", endpoint)], exception_handlers={PaymentError: handler})
    async with open_client(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (402, "sync handler: sync")
    assert threads["handler"] != threads["endpoint"]


async def test_handler_replacing_the_http_exception_default(open_client: OpenClient) -> None:
    async def as_json(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    app = app_with()
    app.add_exception_handler(HTTPException, as_json)
    async with open_client(app) as client:
        response = await client.get("/?status=429&reason=slow+down")
    assert response.status_code == 429
    assert response.json() == {"detail": "Too Many Requests"}
    assert response.headers["x-reason"] == "slow down"


async def test_http_exception_from_a_sync_endpoint(open_client: OpenClient) -> None:
    def endpoint(request: Request) -> Response:
        raise HTTPException(409, "conflict")

    async with open_client(App(routes=[Route("/", endpoint)])) as client:
        response = await client.get("/")
    assert (response.status_code, response.text) == (409, "conflict")


async def test_unhandled_exceptions_reach_the_server_error_layer(open_client: OpenClient) -> None:
    async def payment(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("payment", status_code=402)

    app = app_with(exception_handlers={PaymentError: payment})
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/?error=value")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


async def test_a_failing_handler_becomes_a_500(open_client: OpenClient) -> None:
    async def broken(request: Request, exc: Exception) -> Response:
        raise RuntimeError("handler broke")

    app = app_with(exception_handlers={PaymentError: broken})
    async with open_client(app, raise_server_exceptions=False) as client:
        response = await client.get("/?error=payment")
    assert response.status_code == 500


# ----------------------------------------------------------------------- after the response started


def http_scope() -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
    }


async def test_handled_exception_after_the_response_started_propagates() -> None:
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise HTTPException(400)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    with pytest.raises(RuntimeError, match="response already started") as info:
        await ExceptionMiddleware(app)(http_scope(), receive, send)
    assert isinstance(info.value.__cause__, HTTPException)
    assert [message["type"] for message in sent] == ["http.response.start"]


async def test_http_exception_mid_stream_is_not_a_second_response(
    open_client: OpenClient,
) -> None:
    async def endpoint(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"partial"
            raise HTTPException(400)

        return StreamingResponse(body())

    async with open_client(App(routes=[Route("/", endpoint)])) as client:
        with pytest.raises(RuntimeError, match="response already started"):
            await client.get("/")
            await client.wait_idle()


async def test_unhandled_exception_passes_through_untouched() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise KeyError("not mine")

    async def receive() -> Message:
        raise AssertionError("not called")

    async def send(message: Message) -> None:
        raise AssertionError("not called")

    with pytest.raises(KeyError, match="not mine"):
        await ExceptionMiddleware(app)(http_scope(), receive, send)
