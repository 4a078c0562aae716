"""The middleware suite through the real hypercorn trio server, with a real httpx client.

CORS preflights, gzip (decompressed here, including a body streamed chunk by
chunk), session round trips for cookie and server-side sessions, and
BaseHTTPMiddleware on a real connection.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import trio

from toolkit.applications import App
from toolkit.background import BackgroundTask
from toolkit.middleware import Middleware
from toolkit.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from toolkit.middleware.cors import CORSMiddleware
from toolkit.middleware.gzip import GZipMiddleware
from toolkit.middleware.sessions import SessionMiddleware
from toolkit.requests import Request
from toolkit.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from toolkit.routing import Route
from toolkit.sessions import MemorySessionStore
from toolkit.testing.live import live_server

TIME_LIMIT = 10


async def test_cors_preflight() -> None:
    async def data(request: Request) -> Response:
        return JSONResponse({"data": 1})

    app = App(
        routes=[Route("/data", data, methods=["GET", "PUT"])],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=["https://app.example"],
                allow_methods=["GET", "PUT"],
                allow_headers=["X-Token"],
                allow_credentials=True,
            )
        ],
    )
    with trio.fail_after(TIME_LIMIT):
        async with live_server(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            preflight = {
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "x-token, content-type",
            }
            response = await client.options("/data", headers=preflight)
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == "https://app.example"
            assert response.headers["access-control-allow-methods"] == "GET, PUT"
            assert response.headers["access-control-allow-credentials"] == "true"

            refused = await client.options(
                "/data", headers={**preflight, "Origin": "https://evil.example"}
            )
            assert (refused.status_code, refused.text) == (400, "Disallowed CORS origin")

            response = await client.put("/data", headers={"Origin": "https://app.example"})
            assert response.json() == {"data": 1}
            assert response.headers["access-control-allow-origin"] == "https://app.example"
            assert response.headers["vary"] == "Origin"


async def test_gzip_whole_and_streamed_bodies() -> None:
    text = "toolkit " * 5000
    client_decoded_first = trio.Event()

    async def whole(request: Request) -> Response:
        return PlainTextResponse(text)

    async def streamed(request: Request) -> Response:
        async def chunks() -> AsyncIterator[str]:
            yield "chunk one;"
            # Reached only once the client has decoded the first chunk on its own.
            await client_decoded_first.wait()
            for index in range(2, 6):
                yield f"chunk {index};" * 100

        return StreamingResponse(chunks(), media_type="text/plain")

    app = App(
        routes=[Route("/whole", whole), Route("/streamed", streamed)],
        middleware=[Middleware(GZipMiddleware, minimum_size=10)],
    )
    with trio.fail_after(TIME_LIMIT):
        async with live_server(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            async with client.stream(
                "GET", "/whole", headers={"Accept-Encoding": "gzip"}
            ) as response:
                assert response.headers["content-encoding"] == "gzip"
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            assert int(response.headers["content-length"]) == len(raw) < len(text)
            assert gzip.decompress(raw).decode() == text

            decoder = zlib.decompressobj(31)
            decoded: list[bytes] = []
            async with client.stream(
                "GET", "/streamed", headers={"Accept-Encoding": "gzip"}
            ) as response:
                assert response.headers["content-encoding"] == "gzip"
                assert response.headers["transfer-encoding"] == "chunked"
                async for raw_chunk in response.aiter_raw():
                    decoded.append(decoder.decompress(raw_chunk))
                    if b"".join(decoded).startswith(b"chunk one;"):
                        client_decoded_first.set()
            assert decoder.eof
            expected = "chunk one;" + "".join(f"chunk {index};" * 100 for index in range(2, 6))
            assert b"".join(decoded).decode() == expected

            plain = await client.get("/whole", headers={"Accept-Encoding": "identity"})
            assert "content-encoding" not in plain.headers
            assert plain.text == text


def session_app(**options: Any) -> App:
    async def counter(request: Request) -> Response:
        request.session["count"] = request.session.get("count", 0) + 1
        return JSONResponse(request.session)

    async def logout(request: Request) -> Response:
        request.session.clear()
        return JSONResponse(request.session)

    return App(
        routes=[Route("/count", counter), Route("/logout", logout)],
        middleware=[Middleware(SessionMiddleware, secret_key="integration-secret", **options)],
    )


async def _count_three_times_then_log_out(url: str) -> list[Any]:
    seen: list[Any] = []
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(3):
            seen.append((await client.get("/count")).json())
        seen.append((await client.get("/logout")).json())
        seen.append((await client.get("/count")).json())
    async with httpx.AsyncClient(base_url=url) as stranger:
        seen.append((await stranger.get("/count")).json())
    return seen


EXPECTED_COUNTS = [{"count": 1}, {"count": 2}, {"count": 3}, {}, {"count": 1}, {"count": 1}]


async def test_cookie_session_round_trip() -> None:
    with trio.fail_after(TIME_LIMIT):
        async with live_server(session_app()) as server:
            assert await _count_three_times_then_log_out(server.url) == EXPECTED_COUNTS


async def test_server_side_session_round_trip() -> None:
    store = MemorySessionStore()
    with trio.fail_after(TIME_LIMIT):
        async with live_server(session_app(store=store)) as server:
            assert await _count_three_times_then_log_out(server.url) == EXPECTED_COUNTS
    # Two live sessions remain: the returning client's (after logging out) and the stranger's.
    assert len(store) == 2


async def test_base_http_middleware_over_a_real_connection() -> None:
    events: list[str] = []

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        body = await request.body()
        response = await call_next(request)
        response.headers["X-Custom-Header"] = "Value"
        response.headers["X-Body-Length"] = str(len(body))
        return response

    async def echo(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield await request.body()
            yield b"!"

        return StreamingResponse(chunks(), background=BackgroundTask(events.append, "background"))

    app = App(
        routes=[Route("/echo", echo, methods=["POST"])],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )
    with trio.fail_after(TIME_LIMIT):
        async with live_server(app) as server, httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post("/echo", content=b"hello")
            assert response.text == "hello!"
            assert response.headers["x-custom-header"] == "Value"
            assert response.headers["x-body-length"] == "5"
            missing = await client.get("/missing")
            assert missing.status_code == 404
            assert missing.headers["x-custom-header"] == "Value"
    assert events == ["background"]


async def test_client_leaving_cancels_the_handler_behind_base_http_middleware() -> None:
    handler_started = trio.Event()
    handler_cancelled = trio.Event()

    async def wait_forever(request: Request) -> Response:
        handler_started.set()
        try:
            await trio.sleep_forever()
        finally:
            handler_cancelled.set()
        raise AssertionError("unreachable")  # pragma: no cover

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        return await call_next(request)

    app = App(
        routes=[Route("/wait", wait_forever)],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch)],
    )
    with trio.fail_after(TIME_LIMIT):
        async with live_server(app) as server:
            async with (
                httpx.AsyncClient(base_url=server.url) as client,
                trio.open_nursery() as nursery,
            ):

                async def leave_once_started(cancel_scope: trio.CancelScope) -> None:
                    await handler_started.wait()
                    cancel_scope.cancel()

                with trio.CancelScope() as request_scope:
                    nursery.start_soon(leave_once_started, request_scope)
                    await client.get("/wait")
            await handler_cancelled.wait()
