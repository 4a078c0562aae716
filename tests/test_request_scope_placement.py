"""Where the request's cancel scope is entered, and that moving it never loses a cancellation.

An app without user middleware lets the router enter the scope at the matched
route, and an endpoint that cannot wait runs outside it; these tests pin down
that a streamed body, children and deadlines still get cancelled as usual.
"""

from __future__ import annotations

import functools

import trio

from toolkit.applications import App
from toolkit.middleware import Middleware
from toolkit.request_scope import SCOPE_KEY
from toolkit.requests import Request
from toolkit.responses import PlainTextResponse, Response, StreamingResponse
from toolkit.routing import Mount, Route, cannot_wait
from toolkit.testclient import AsyncTestClient
from toolkit.types import ASGIApp, Receive, Scope, Send

TIME_LIMIT = 5


async def never_waits(request: Request) -> Response:
    return PlainTextResponse("ok")


async def waits(request: Request) -> Response:
    await trio.lowlevel.checkpoint()
    return PlainTextResponse("ok")


async def iterates(request: Request) -> Response:
    async for _ in request.stream():
        pass
    return PlainTextResponse("ok")


async def enters(request: Request) -> Response:
    async with trio.open_nursery():
        pass
    return PlainTextResponse("ok")


async def awaits_in_a_comprehension(request: Request) -> Response:
    parts = [await trio.sleep(0) for _ in range(2)]
    return PlainTextResponse(str(parts))


class Handlers:
    async def method(self, request: Request) -> Response:
        return PlainTextResponse("ok")


def test_cannot_wait_reads_the_endpoints_own_code() -> None:
    assert cannot_wait(never_waits)
    assert cannot_wait(functools.partial(never_waits))
    assert cannot_wait(Handlers().method)
    for endpoint in (waits, iterates, enters, awaits_in_a_comprehension):
        assert not cannot_wait(endpoint), endpoint.__name__


def test_sync_functions_and_classes_are_not_async_endpoints() -> None:
    def sync(request: Request) -> Response:
        return PlainTextResponse("ok")

    assert not cannot_wait(sync)
    assert not cannot_wait(Handlers)


def test_only_plain_routes_without_options_skip_the_scope() -> None:
    assert Route("/", never_waits).never_waits
    assert not Route("/", waits).never_waits
    assert not Route("/", never_waits, timeout=1).never_waits
    assert not Route("/", never_waits, middleware=[Middleware(PassThrough)]).never_waits
    assert not Mount("/m", routes=[Route("/", never_waits)]).never_waits


class PassThrough:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def test_the_router_enters_the_scope_only_for_routes_that_may_wait() -> None:
    inside: dict[str, bool] = {}

    async def quick(request: Request) -> Response:
        inside["quick"] = request.scope[SCOPE_KEY]._in_scope
        return PlainTextResponse("quick")

    async def slow(request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        inside["slow"] = request.scope[SCOPE_KEY]._in_scope
        return PlainTextResponse("slow")

    app = App(routes=[Route("/quick", quick), Route("/slow", slow)])
    async with AsyncTestClient(app) as client:
        for name in ("quick", "slow"):
            assert (await client.get(f"/{name}")).text == name
    assert inside == {"quick": False, "slow": True}


async def test_with_user_middleware_the_app_enters_the_scope_itself() -> None:
    inside: list[bool] = []

    async def quick(request: Request) -> Response:
        inside.append(request.scope[SCOPE_KEY]._in_scope)
        return PlainTextResponse("quick")

    app = App(routes=[Route("/", quick)], middleware=[Middleware(PassThrough)])
    async with AsyncTestClient(app) as client:
        await client.get("/")
    assert inside == [True]


async def test_a_stream_from_an_endpoint_that_cannot_wait_is_cancelled_when_the_client_leaves() -> (
    None
):
    finished = trio.Event()

    async def forever() -> object:
        try:
            while True:
                yield b"tick\n"
                await trio.sleep(0.01)
        finally:
            finished.set()

    async def stream(request: Request) -> Response:
        return StreamingResponse(forever())

    route = Route("/stream", stream)
    assert route.never_waits
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(App(routes=[route])) as client:
            async with client.stream("GET", "/stream") as response:
                async for _ in response.aiter_bytes():
                    break
            await finished.wait()


async def test_children_of_an_endpoint_that_cannot_wait_are_joined_and_cancelled() -> None:
    events: list[str] = []
    child_cancelled = trio.Event()

    async def child() -> None:
        events.append("child started")
        try:
            await trio.sleep(0.05)
            events.append("child done")
        except trio.Cancelled:
            child_cancelled.set()
            raise

    async def spawns(request: Request) -> Response:
        request.nursery.start_soon(child)
        return PlainTextResponse("spawned")

    route = Route("/spawn", spawns)
    assert route.never_waits
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(App(routes=[route])) as client:
            response = await client.get("/spawn")
            assert response.text == "spawned"
            await client.wait_idle()
    assert events == ["child started", "child done"]
    assert not child_cancelled.is_set()


async def test_an_app_deadline_still_applies_to_an_endpoint_that_cannot_wait(
    autojump_clock: trio.abc.Clock,
) -> None:
    async def stream(request: Request) -> Response:
        async def slow() -> object:
            yield b"first\n"
            await trio.sleep(60)
            yield b"never\n"

        return StreamingResponse(slow())

    app = App(routes=[Route("/", stream)], request_timeout=1)
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            response = await client.get("/")
    assert response.text == "first\n"


async def test_user_middleware_runs_inside_the_scope() -> None:
    cancelled = trio.Event()

    class Waits:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                try:
                    await trio.sleep_forever()
                except trio.Cancelled:
                    cancelled.set()
                    raise
            await self.app(scope, receive, send)

    app = App(routes=[Route("/", never_waits)], middleware=[Middleware(Waits)])
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(app) as client:
            with trio.move_on_after(0.05):
                await client.get("/")  # the client leaves before any response
            await cancelled.wait()


async def test_children_of_an_endpoint_that_cannot_wait_are_cancelled_when_the_client_leaves() -> (
    None
):
    child_cancelled = trio.Event()

    async def child() -> None:
        try:
            await trio.sleep_forever()
        finally:
            child_cancelled.set()

    async def body() -> object:
        while True:
            yield b"tick\n"
            await trio.sleep(0.01)

    async def spawns(request: Request) -> Response:
        request.nursery.start_soon(child)
        return StreamingResponse(body())

    route = Route("/spawn", spawns)
    assert route.never_waits
    with trio.fail_after(TIME_LIMIT):
        async with AsyncTestClient(App(routes=[route])) as client:
            async with client.stream("GET", "/spawn") as response:
                async for _ in response.aiter_bytes():
                    break
            await child_cancelled.wait()
