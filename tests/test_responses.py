"""toolkit.responses: what each response class puts on the wire, through both test clients.

Client tests run twice, through ``AsyncTestClient`` and through the sync ``TestClient`` (driven
from a worker thread); tests that watch chunks arrive or close a stream early use the async
client, which streams in the test's own run. A few tests call the app as a bare ASGI callable to
see the exact messages it sends.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import trio

from tests.apps import RecordResponseEnd
from tests.clients import OpenClient
from toolkit.applications import App
from toolkit.background import BackgroundTask, BackgroundTasks
from toolkit.requests import Request
from toolkit.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from toolkit.routing import Route
from toolkit.testclient import AsyncTestClient, TestClient
from toolkit.types import Message, Scope

# ----------------------------------------------------------------------------- apps


def serving(response: Response | Callable[[], Response], path: str = "/") -> App:
    """An app answering ``path`` with ``response`` (or a fresh one from a factory each time)."""

    async def endpoint(request: Request) -> Response:
        return response() if callable(response) and not isinstance(response, Response) else response

    return App(routes=[Route(path, endpoint)])


def head_scope(method: str = "GET", path: str = "/") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
        "state": {},
    }


async def sent_messages(app: Any, method: str = "GET", path: str = "/") -> list[Message]:
    """Call ``app`` as a bare ASGI callable and return every message it sends."""
    sent: list[Message] = []
    request_delivered = False

    async def receive() -> Message:
        nonlocal request_delivered
        await trio.lowlevel.checkpoint()
        if not request_delivered:
            request_delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(head_scope(method, path), receive, send)
    return sent


# ----------------------------------------------------------------------------- content and headers


@pytest.mark.parametrize(
    ("response", "body", "content_type"),
    [
        (Response(b"\x00\x01raw"), b"\x00\x01raw", None),
        (Response(memoryview(b"view")), b"view", None),
        (Response(), b"", None),
        (Response("text", media_type="text/csv"), b"text", "text/csv; charset=utf-8"),
        (Response(b"<x/>", media_type="application/xml"), b"<x/>", "application/xml"),
        (
            Response("x", media_type="text/plain; Charset=ISO-8859-1"),
            b"x",
            "text/plain; Charset=ISO-8859-1",
        ),
        (PlainTextResponse("héllo"), "héllo".encode(), "text/plain; charset=utf-8"),
        (HTMLResponse("<p>é</p>"), "<p>é</p>".encode(), "text/html; charset=utf-8"),
        (
            PlainTextResponse("# title", media_type="text/markdown"),
            b"# title",
            "text/markdown; charset=utf-8",
        ),
        (
            JSONResponse({"a": [1, 2.5], "b": None, "c": True}),
            b'{"a":[1,2.5],"b":null,"c":true}',
            "application/json",
        ),
        (
            JSONResponse({"name": "Zoë", "party": "🎉"}),
            '{"name":"Zoë","party":"🎉"}'.encode(),
            None,
        ),
        (JSONResponse(None), b"null", "application/json"),
        (JSONResponse([]), b"[]", "application/json"),
    ],
    ids=[
        "bytes",
        "memoryview",
        "empty",
        "text-media-type-gets-charset",
        "non-text-no-charset",
        "charset-given-kept",
        "plain-text",
        "html",
        "media-type-override",
        "json-compact",
        "json-non-ascii-kept",
        "json-null",
        "json-empty-list",
    ],
)
async def test_body_content_length_and_content_type(
    open_client: OpenClient, response: Response, body: bytes, content_type: str | None
) -> None:
    if content_type is None and isinstance(response, JSONResponse):
        content_type = "application/json"
    expected = [("content-length", str(len(body)))]
    if content_type is not None:
        expected.append(("content-type", content_type))
    async with open_client(serving(response)) as client:
        answer = await client.get("/")
    assert answer.status_code == 200
    assert answer.content == body
    assert answer.headers.multi_items() == expected


async def test_subclass_charset_encodes_the_body(open_client: OpenClient) -> None:
    class Latin1Response(PlainTextResponse):
        charset = "latin-1"

    async with open_client(serving(Latin1Response("café"))) as client:
        answer = await client.get("/")
    assert answer.content == b"caf\xe9"
    assert answer.headers["content-type"] == "text/plain; charset=latin-1"
    assert answer.headers["content-length"] == "4"


async def test_custom_headers_and_status(open_client: OpenClient) -> None:
    response = PlainTextResponse(
        "created", status_code=201, headers={"X-Request-Id": "42", "Cache-Control": "no-store"}
    )
    response.headers["x-added-later"] = "yes"
    async with open_client(serving(response)) as client:
        answer = await client.get("/")
    assert answer.status_code == 201
    assert answer.headers.multi_items() == [
        ("x-request-id", "42"),
        ("cache-control", "no-store"),
        ("content-length", "7"),
        ("content-type", "text/plain; charset=utf-8"),
        ("x-added-later", "yes"),
    ]


async def test_given_content_type_replaces_the_default(open_client: OpenClient) -> None:
    response = JSONResponse({"a": 1}, headers={"Content-Type": "application/vnd.api+json"})
    async with open_client(serving(response)) as client:
        answer = await client.get("/")
    assert answer.headers.get_list("content-type") == ["application/vnd.api+json"]
    assert answer.json() == {"a": 1}


@pytest.mark.parametrize("status_code", [204, 304])
def test_bodyless_statuses_have_no_content_length(status_code: int) -> None:
    response = Response(status_code=status_code)
    assert response.raw_headers == []


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_json_rejects_nan_and_infinity(value: float) -> None:
    with pytest.raises(ValueError):
        JSONResponse({"value": value})


# ----------------------------------------------------------------------------- HEAD


@pytest.mark.parametrize(
    "response",
    [PlainTextResponse("hello world"), JSONResponse({"message": "hello"})],
    ids=["text", "json"],
)
async def test_head_has_the_gets_headers_and_no_body(
    open_client: OpenClient, response: Response
) -> None:
    async with open_client(serving(response)) as client:
        get = await client.get("/")
        head = await client.head("/")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content)) != "0"
    assert head.headers == get.headers


async def test_head_sends_no_body_bytes() -> None:
    app = serving(PlainTextResponse("hello world"))
    messages = await sent_messages(app, "HEAD")
    assert [message["type"] for message in messages] == [
        "http.response.start",
        "http.response.body",
    ]
    assert (b"content-length", b"11") in messages[0]["headers"]
    assert messages[1]["body"] == b""


async def test_head_on_a_stream_sends_no_body_and_stops_the_generator() -> None:
    produced: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        produced.append("started")
        yield b"never sent"

    app = serving(lambda: StreamingResponse(chunks()))
    messages = await sent_messages(app, "HEAD")
    assert [message.get("body", b"") for message in messages[1:]] == [b""]
    assert produced == []


# ----------------------------------------------------------------------------- redirects


async def test_redirect_is_a_307_by_default(open_client: OpenClient) -> None:
    async with open_client(serving(RedirectResponse("/elsewhere")), follow_redirects=False) as c:
        answer = await c.get("/")
    assert answer.status_code == 307
    assert answer.headers.multi_items() == [("content-length", "0"), ("location", "/elsewhere")]
    assert answer.content == b""


@pytest.mark.parametrize("status_code", [301, 302, 303, 308])
def test_redirect_status_can_be_chosen(status_code: int) -> None:
    assert RedirectResponse("/x", status_code=status_code).status_code == status_code


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("/café", "/caf%C3%A9"),
        ("/a b?q=x y", "/a%20b?q=x%20y"),
        ("/already%20encoded", "/already%20encoded"),
        ("https://example.org:8443/p?a=1&b=[2]#frag", "https://example.org:8443/p?a=1&b=[2]#frag"),
        ("/path;param=1,2/~user@host", "/path;param=1,2/~user@host"),
        ('/quote"and<angle>', "/quote%22and%3Cangle%3E"),
        ("/x\r\nSet-Cookie: evil=1", "/x%0D%0ASet-Cookie:%20evil=1"),
    ],
)
def test_redirect_location_is_quoted(url: str, location: str) -> None:
    assert RedirectResponse(url).headers["location"] == location


async def test_redirect_is_followed_with_method_and_body_kept(open_client: OpenClient) -> None:
    async def old(request: Request) -> Response:
        return RedirectResponse(request.url_for("new"))

    async def new(request: Request) -> Response:
        return PlainTextResponse(f"{request.method} {(await request.body()).decode()}")

    app = App(routes=[Route("/old", old, methods=["POST"]), Route("/new", new, methods=["POST"])])
    async with open_client(app) as client:
        answer = await client.request("POST", "/old", content=b"payload")
    assert answer.text == "POST payload"
    assert answer.url == "http://testserver/new"


# ----------------------------------------------------------------------------- streaming


async def test_streaming_an_async_generator(open_client: OpenClient) -> None:
    async def chunks() -> AsyncIterator[bytes | str]:
        yield b"one,"
        await trio.sleep(0)
        yield "two,"
        yield "é"

    def response() -> Response:
        return StreamingResponse(chunks(), media_type="text/csv", headers={"x-kind": "stream"})

    async with open_client(serving(response)) as client:
        answer = await client.get("/")
    assert answer.content == "one,two,é".encode()
    assert answer.headers.multi_items() == [
        ("x-kind", "stream"),
        ("content-type", "text/csv; charset=utf-8"),
    ]


async def test_streaming_a_sync_iterator_runs_it_in_a_worker_thread(
    open_client: OpenClient,
) -> None:
    app = App(thread_limit=1)
    seen: dict[str, Any] = {}

    def chunks() -> Iterator[str | bytes]:
        seen["thread"] = threading.get_ident()
        seen["borrowed"] = app.thread_limiter.borrowed_tokens
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            seen["in_trio"] = False
        else:
            seen["in_trio"] = True
        yield "sync,"
        yield b"bytes"

    async def endpoint(request: Request) -> Response:
        seen["trio_thread"] = threading.get_ident()
        return StreamingResponse(chunks())

    app.add_route("/", endpoint)
    async with open_client(app) as client:
        answer = await client.get("/")
    assert answer.content == b"sync,bytes"
    assert seen["in_trio"] is False
    assert seen["thread"] != seen["trio_thread"]
    assert seen["borrowed"] == 1  # under the app's own limiter


async def test_streaming_a_custom_async_iterable(open_client: OpenClient) -> None:
    class Countdown:
        """An async iterable that is not a generator (no ``aclose``)."""

        def __init__(self, start: int) -> None:
            self.current = start

        def __aiter__(self) -> Countdown:
            return self

        async def __anext__(self) -> str:
            if self.current == 0:
                raise StopAsyncIteration
            self.current -= 1
            return f"{self.current + 1} "

    async with open_client(serving(lambda: StreamingResponse(Countdown(3)))) as client:
        assert (await client.get("/")).text == "3 2 1 "


async def test_streamed_chunks_reach_the_client_as_they_are_sent() -> None:
    first_received = trio.Event()
    finished = False

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal finished
        yield b"first"
        await first_received.wait()  # the generator cannot end before the client saw "first"
        yield b"second"
        finished = True

    with trio.fail_after(3):
        app = serving(lambda: StreamingResponse(chunks()))
        async with AsyncTestClient(app) as client, client.stream("GET", "/") as answer:
            parts = aiter(answer.aiter_raw())
            assert await anext(parts) == b"first"
            assert not finished
            first_received.set()
            assert [part async for part in parts] == [b"second"]
    assert finished


async def test_closing_a_stream_early_runs_the_generators_finally() -> None:
    cleaned_up = trio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"tick "
                await trio.sleep(0.001)
        finally:
            cleaned_up.set()

    with trio.fail_after(3):
        async with AsyncTestClient(serving(lambda: StreamingResponse(endless()))) as client:
            async with client.stream("GET", "/") as answer:
                async for part in answer.aiter_raw():
                    assert part == b"tick "
                    break
            await cleaned_up.wait()


async def test_sync_iterator_is_closed_when_the_sync_client_closes_early() -> None:
    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"tick "
        finally:
            closed.set()

    def read_one_chunk() -> bytes:
        app = serving(lambda: StreamingResponse(endless()))
        with TestClient(app) as client, client.stream("GET", "/") as answer:
            return next(answer.iter_raw())

    with trio.fail_after(3):
        assert await trio.to_thread.run_sync(read_one_chunk) == b"tick "
    assert closed.is_set()


# ----------------------------------------------------------------------------- cookies


def test_set_cookie_with_every_option() -> None:
    response = Response()
    response.set_cookie(
        "sid",
        "abc",
        max_age=600,
        expires=datetime(2030, 1, 1, tzinfo=UTC),
        path="/app",
        domain="example.org",
        secure=True,
        httponly=True,
        samesite="strict",
        partitioned=True,
    )
    assert response.headers.getlist("set-cookie") == [
        "sid=abc; Domain=example.org; expires=Tue, 01 Jan 2030 00:00:00 GMT; HttpOnly; "
        "Max-Age=600; Path=/app; SameSite=strict; Secure; Partitioned"
    ]


@pytest.mark.parametrize(
    ("options", "header"),
    [
        ({}, "k=v; Path=/; SameSite=lax"),
        ({"path": None, "samesite": None}, "k=v"),
        ({"samesite": "none", "secure": True}, "k=v; Path=/; SameSite=none; Secure"),
        ({"httponly": True}, "k=v; HttpOnly; Path=/; SameSite=lax"),
        (
            {"expires": "Wed, 01 Jan 2031 00:00:00 GMT"},
            "k=v; expires=Wed, 01 Jan 2031 00:00:00 GMT; Path=/; SameSite=lax",
        ),
        ({"value": "two words"}, 'k="two words"; Path=/; SameSite=lax'),
        ({"value": 'quote"semi;'}, 'k="quote\\"semi\\073"; Path=/; SameSite=lax'),
    ],
)
def test_set_cookie_options(options: dict[str, Any], header: str) -> None:
    response = Response()
    response.set_cookie("k", **{"value": "v", **options})
    assert response.headers.getlist("set-cookie") == [header]


def test_set_cookie_expires_in_seconds_is_relative_to_now() -> None:
    response = Response()
    response.set_cookie("k", "v", expires=3600)
    header = response.headers["set-cookie"]
    expires = header.split("expires=")[1].split(";")[0]
    delta = parsedate_to_datetime(expires) - datetime.now(UTC)
    assert timedelta(minutes=59) < delta <= timedelta(hours=1)


def test_set_cookie_rejects_an_unknown_samesite() -> None:
    with pytest.raises(ValueError, match="samesite"):
        Response().set_cookie("k", "v", samesite="sometimes")  # type: ignore[arg-type]


def test_delete_cookie_expires_it_now() -> None:
    response = Response()
    response.delete_cookie(
        "sid", path="/app", domain="example.org", secure=True, httponly=True, partitioned=True
    )
    header = response.headers["set-cookie"]
    assert header.startswith('sid=""; Domain=example.org; expires=')
    assert header.endswith("; HttpOnly; Max-Age=0; Path=/app; SameSite=lax; Secure; Partitioned")
    expires = header.split("expires=")[1].split(";")[0]
    assert abs(parsedate_to_datetime(expires) - datetime.now(UTC)) < timedelta(seconds=5)


async def test_cookies_round_trip_through_the_client(open_client: OpenClient) -> None:
    async def login(request: Request) -> Response:
        response = PlainTextResponse("logged in")
        response.set_cookie("sid", "s3cr3t value", httponly=True)
        response.set_cookie("theme", "dark")
        return response

    async def whoami(request: Request) -> Response:
        return JSONResponse(request.cookies)

    async def logout(request: Request) -> Response:
        response = PlainTextResponse("bye")
        response.delete_cookie("sid")
        return response

    app = App(routes=[Route("/login", login), Route("/me", whoami), Route("/logout", logout)])
    async with open_client(app) as client:
        set_headers = (await client.get("/login")).headers.get_list("set-cookie")
        assert set_headers == [
            'sid="s3cr3t value"; HttpOnly; Path=/; SameSite=lax',
            "theme=dark; Path=/; SameSite=lax",
        ]
        assert (await client.get("/me")).json() == {"sid": "s3cr3t value", "theme": "dark"}
        await client.get("/logout")
        assert (await client.get("/me")).json() == {"theme": "dark"}


# ----------------------------------------------------------------------------- background


async def test_background_runs_after_the_response_is_sent(open_client: OpenClient) -> None:
    events: list[str] = []

    async def note_async(label: str) -> None:
        events.append(label)

    def note_sync(label: str) -> None:
        events.append(label)

    async def endpoint(request: Request) -> Response:
        tasks = BackgroundTasks()
        tasks.add_task(note_async, "async task")
        tasks.add_task(note_sync, label="sync task")
        return PlainTextResponse("done", background=tasks)

    async def streaming(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"streamed"

        return StreamingResponse(body(), background=BackgroundTask(note_sync, "after stream"))

    app = App(routes=[Route("/", endpoint), Route("/stream", streaming)])
    app.add_middleware(RecordResponseEnd, events=events)
    async with open_client(app) as client:
        assert (await client.get("/")).text == "done"
        await client.wait_idle()
        assert events == ["response sent", "async task", "sync task"]
        events.clear()
        assert (await client.get("/stream")).text == "streamed"
        await client.wait_idle()
        assert events == ["response sent", "after stream"]


async def test_background_does_not_hold_back_the_response() -> None:
    release = trio.Event()
    done = False

    async def slow_job() -> None:
        nonlocal done
        await release.wait()
        done = True

    with trio.fail_after(3):
        app = serving(lambda: PlainTextResponse("ok", background=BackgroundTask(slow_job)))
        async with AsyncTestClient(app) as client:
            assert (await client.get("/")).text == "ok"
            assert not done
            release.set()
            await client.wait_idle()
            assert done
