"""GZipMiddleware: what is compressed, what is left alone, and streaming chunk by chunk."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

import toolkit.middleware.gzip as gzip_module
from tests.clients import OpenClient
from tests.middleware.test_base import scopes_reaching_app
from toolkit.applications import App
from toolkit.middleware import Middleware
from toolkit.middleware.gzip import GZipMiddleware, accepts_gzip
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response, StreamingResponse
from toolkit.routing import Route
from toolkit.testclient import AsyncTestClient

BODY = "x" * 4000


def gzip_app(endpoint: Any, **options: Any) -> App:
    return App(routes=[Route("/", endpoint)], middleware=[Middleware(GZipMiddleware, **options)])


async def text(request: Request) -> Response:
    return PlainTextResponse(BODY)


async def test_compresses_when_the_client_accepts_gzip(open_client: OpenClient) -> None:
    async with open_client(gzip_app(text)) as client:
        response = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.text == BODY  # httpx decompressed it
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) < len(BODY)


async def test_no_compression_without_gzip_but_still_vary(open_client: OpenClient) -> None:
    async with open_client(gzip_app(text)) as client:
        for accept in ("identity", "br", "gzip;q=0", "gzip;q=0, *"):
            response = await client.get("/", headers={"Accept-Encoding": accept})
            assert response.text == BODY
            assert "content-encoding" not in response.headers
            assert response.headers["content-length"] == str(len(BODY))
            assert response.headers["vary"] == "Accept-Encoding"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip;q=0.0, *;q=1", False),
        ("*", True),
        ("*;q=0", False),
        ("identity", False),
        ("gzip;q=junk", False),
        ("gzip;level=1", True),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


async def test_small_bodies_are_sent_as_they_are(open_client: OpenClient) -> None:
    async def small(request: Request) -> Response:
        return PlainTextResponse("tiny")

    async with open_client(gzip_app(small)) as client:
        response = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert response.text == "tiny"
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers


async def test_minimum_size(open_client: OpenClient) -> None:
    async def body_of_100(request: Request) -> Response:
        return PlainTextResponse("y" * 100)

    async with open_client(gzip_app(body_of_100, minimum_size=100)) as client:
        response = await client.get("/", headers={"Accept-Encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"
    async with open_client(gzip_app(body_of_100, minimum_size=101)) as client:
        response = await client.get("/", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in response.headers


async def test_compresslevel() -> None:
    """The gzip header's XFL byte records the level class: 2 for best, 4 for fastest."""
    for level, xfl in ((9, 2), (1, 4)):
        app = gzip_app(text, compresslevel=level)
        async with (
            AsyncTestClient(app) as client,
            client.stream("GET", "/", headers={"Accept-Encoding": "gzip"}) as response,
        ):
            raw = b"".join([chunk async for chunk in response.aiter_raw()])
        assert raw[8] == xfl
        assert gzip.decompress(raw).decode() == BODY


async def test_already_encoded_responses_are_left_alone(open_client: OpenClient) -> None:
    payload = gzip.compress(BODY.encode())

    async def encoded(request: Request) -> Response:
        return Response(payload, headers={"Content-Encoding": "gzip"}, media_type="text/plain")

    async with open_client(gzip_app(encoded)) as client:
        response = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert response.text == BODY  # decoded once by httpx: not compressed twice
    assert response.headers["content-length"] == str(len(payload))
    assert "vary" not in response.headers


@pytest.mark.parametrize(
    "media_type", ["text/event-stream", "image/png", "video/mp4", "application/grpc+proto"]
)
async def test_excluded_content_types_are_left_alone(media_type: str) -> None:
    async def excluded(request: Request) -> Response:
        return Response(BODY, media_type=media_type)

    async with AsyncTestClient(gzip_app(excluded)) as client:
        response = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.text == BODY


async def test_exclude_content_types_option(open_client: OpenClient) -> None:
    async def csv(request: Request) -> Response:
        return Response(BODY, media_type="text/csv")

    async def png(request: Request) -> Response:
        return Response(BODY, media_type="image/png")

    app = App(
        routes=[Route("/csv", csv), Route("/png", png)],
        middleware=[Middleware(GZipMiddleware, exclude_content_types=("Text/CSV; charset=x",))],
    )
    async with open_client(app) as client:
        response = await client.get("/csv", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in response.headers
        # The option replaces the defaults: PNGs are now compressed.
        response = await client.get("/png", headers={"Accept-Encoding": "gzip"})
        assert response.headers["content-encoding"] == "gzip"


async def test_partial_and_bodiless_statuses_are_left_alone(open_client: OpenClient) -> None:
    async def partial(request: Request) -> Response:
        return PlainTextResponse(BODY, status_code=206)

    async with open_client(gzip_app(partial)) as client:
        response = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 206
    assert "content-encoding" not in response.headers


async def test_strong_etag_becomes_weak(open_client: OpenClient) -> None:
    async def tagged(request: Request) -> Response:
        return PlainTextResponse(BODY, headers={"ETag": '"abc"'})

    async with open_client(gzip_app(tagged)) as client:
        compressed = await client.get("/", headers={"Accept-Encoding": "gzip"})
        plain = await client.get("/", headers={"Accept-Encoding": "identity"})
    assert compressed.headers["etag"] == 'W/"abc"'
    assert plain.headers["etag"] == '"abc"'


async def test_streamed_body_is_compressed_and_flushed_chunk_by_chunk() -> None:
    client_decoded_first = trio.Event()

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[str]:
            yield "first chunk "
            # Only reachable if the client could decode the first chunk on its own.
            await client_decoded_first.wait()
            yield "second chunk"

        return StreamingResponse(chunks(), media_type="text/plain")

    async with AsyncTestClient(gzip_app(stream)) as client:
        with trio.fail_after(5):
            async with client.stream("GET", "/", headers={"Accept-Encoding": "gzip"}) as response:
                assert response.headers["content-encoding"] == "gzip"
                assert "content-length" not in response.headers
                assert response.headers["vary"] == "Accept-Encoding"
                decoder = zlib.decompressobj(31)
                decoded = []
                async for raw in response.aiter_raw():
                    decoded.append(decoder.decompress(raw))
                    if decoded[0]:
                        client_decoded_first.set()
    assert decoded[0] == b"first chunk "
    assert b"".join(decoded) == b"first chunk second chunk"
    assert decoder.eof


async def test_streamed_body_without_gzip_passes_unchanged(open_client: OpenClient) -> None:
    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[str]:
            for index in range(3):
                yield f"chunk {index};"

        return StreamingResponse(chunks(), media_type="text/plain")

    async with open_client(gzip_app(stream)) as client:
        response = await client.get("/", headers={"Accept-Encoding": "identity"})
    assert response.text == "chunk 0;chunk 1;chunk 2;"
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"


async def test_large_chunks_are_compressed_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_thread: list[int] = []
    real_run_in_thread = gzip_module.run_in_thread

    async def recording_run_in_thread(func: Any, *args: Any, **kwargs: Any) -> Any:
        in_thread.append(len(args[0]))
        return await real_run_in_thread(func, *args, **kwargs)

    monkeypatch.setattr(gzip_module, "run_in_thread", recording_run_in_thread)
    async with AsyncTestClient(gzip_app(text, thread_minimum_size=1000)) as client:
        response = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert response.text == BODY
    assert in_thread == [len(BODY)]


async def test_websocket_scopes_pass_through() -> None:
    scope = {"type": "websocket", "headers": [(b"accept-encoding", b"gzip")]}
    assert await scopes_reaching_app(GZipMiddleware, scope) == [scope]
