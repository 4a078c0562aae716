"""SessionMiddleware: signed cookie sessions and server-side sessions, every option, bad cookies."""

from __future__ import annotations

import json
import logging
import time
from base64 import b64encode
from functools import partial
from typing import Any

import itsdangerous
import pytest

from tests.clients import OpenClient
from tests.middleware.test_base import scopes_reaching_app
from toolkit.applications import App
from toolkit.datastructures import Secret
from toolkit.middleware import Middleware
from toolkit.middleware.sessions import Session, SessionMiddleware
from toolkit.requests import Request
from toolkit.responses import JSONResponse, PlainTextResponse, Response
from toolkit.routing import Route
from toolkit.sessions import MemorySessionStore
from toolkit.types import Message, Receive, Scope, Send

SECRET = "example-secret"


async def view(request: Request) -> Response:
    return JSONResponse({"session": dict(request.session)})


async def update(request: Request) -> Response:
    request.session.update(await request.json())
    return JSONResponse({"session": dict(request.session)})


async def clear(request: Request) -> Response:
    request.session.clear()
    return JSONResponse({"session": dict(request.session)})


async def login(request: Request) -> Response:
    """Clear, then fill: the way to rotate a server-side session id."""
    request.session.clear()
    request.session["user"] = "alice"
    return JSONResponse({"session": dict(request.session)})


async def untouched(request: Request) -> Response:
    return PlainTextResponse("no session here")


def session_app(**options: Any) -> App:
    routes = [
        Route("/view", view),
        Route("/update", update, methods=["POST"]),
        Route("/clear", clear, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/untouched", untouched),
    ]
    options.setdefault("secret_key", SECRET)
    return App(routes=routes, middleware=[Middleware(SessionMiddleware, **options)])


def signed_cookie(payload: bytes, secret: str = SECRET, age: int = 0) -> str:
    signer = itsdangerous.TimestampSigner(secret)
    if age:
        signer.get_timestamp = lambda: int(time.time()) - age  # type: ignore[method-assign]
    return signer.sign(payload).decode()


def cookie_session(data: Any, **kwargs: Any) -> str:
    return signed_cookie(b64encode(json.dumps(data).encode()), **kwargs)


async def test_session_round_trip_across_requests(open_client: OpenClient) -> None:
    async with open_client(session_app()) as client:
        assert (await client.get("/view")).json() == {"session": {}}

        response = await client.post("/update", json={"some": "data"})
        assert response.json() == {"session": {"some": "data"}}
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith("session=")
        assert "path=/; Max-Age=1209600; httponly; samesite=lax" in set_cookie
        assert "secure" not in set_cookie

        assert (await client.get("/view")).json() == {"session": {"some": "data"}}

        response = await client.post("/clear")
        assert response.json() == {"session": {}}
        assert "session=null" in response.headers["set-cookie"]
        assert "expires=Thu, 01 Jan 1970 00:00:00 GMT" in response.headers["set-cookie"]

        assert (await client.get("/view")).json() == {"session": {}}


async def test_cookie_is_written_only_when_the_session_changed(open_client: OpenClient) -> None:
    async with open_client(session_app()) as client:
        await client.post("/update", json={"a": 1})
        response = await client.get("/view")
        assert "set-cookie" not in response.headers
        assert response.headers["vary"] == "Cookie"

        response = await client.get("/untouched")
        assert "set-cookie" not in response.headers
        assert "vary" not in response.headers


async def test_emptying_a_session_that_never_existed_sets_no_cookie(
    open_client: OpenClient,
) -> None:
    async with open_client(session_app()) as client:
        response = await client.post("/clear")
    assert "set-cookie" not in response.headers


async def test_options_shape_the_cookie(open_client: OpenClient) -> None:
    app = session_app(
        secret_key=Secret(SECRET),
        session_cookie="sid",
        max_age=None,
        path="/app",
        same_site="strict",
        https_only=True,
        domain="example.com",
        partitioned=True,
    )
    async with open_client(app) as client:
        response = await client.post("/update", json={"a": 1})
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("sid=")
    assert "Max-Age" not in set_cookie
    assert set_cookie.endswith(
        "; path=/app; httponly; samesite=strict; secure; domain=example.com; partitioned"
    )


async def test_the_secret_signs_the_cookie(open_client: OpenClient) -> None:
    async with open_client(session_app()) as client:
        other_secret = cookie_session({"user": "mallory"}, secret="another-secret")
        response = await client.get("/view", headers={"Cookie": f"session={other_secret}"})
        assert response.json() == {"session": {}}
        same_secret = cookie_session({"user": "alice"})
        response = await client.get("/view", headers={"Cookie": f"session={same_secret}"})
        assert response.json() == {"session": {"user": "alice"}}


async def test_tampered_cookie_gives_an_empty_session(open_client: OpenClient) -> None:
    genuine = cookie_session({"user": "alice"})
    _, _, rest = genuine.partition(".")
    forged_payload = b64encode(json.dumps({"user": "admin"}).encode()).decode()
    async with open_client(session_app()) as client:
        for tampered in (f"{forged_payload}.{rest}", genuine[:-2] + "xx"):
            response = await client.get("/view", headers={"Cookie": f"session={tampered}"})
            assert (response.status_code, response.json()) == (200, {"session": {}})


async def test_expired_cookie_gives_an_empty_session(open_client: OpenClient) -> None:
    async with open_client(session_app(max_age=60)) as client:
        fresh = cookie_session({"user": "alice"}, age=30)
        assert (await client.get("/view", headers={"Cookie": f"session={fresh}"})).json() == {
            "session": {"user": "alice"}
        }
        stale = cookie_session({"user": "alice"}, age=120)
        response = await client.get("/view", headers={"Cookie": f"session={stale}"})
        assert (response.status_code, response.json()) == (200, {"session": {}})


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "a.b.c",
        "ünïcode",
        signed_cookie(b"not base64!"),
        signed_cookie(b64encode(b"not json")),
        signed_cookie(b64encode(b"[1, 2, 3]")),
        signed_cookie(b64encode(b"\xff\xfe")),
    ],
)
async def test_garbage_cookie_gives_an_empty_session(open_client: OpenClient, cookie: str) -> None:
    async with open_client(session_app()) as client:
        header = f"session={cookie}".encode("latin-1")
        response = await client.get("/view", headers={b"Cookie": header})
    assert (response.status_code, response.json()) == (200, {"session": {}})


async def test_oversized_cookie_gives_an_empty_session(open_client: OpenClient) -> None:
    big = cookie_session({"blob": "x" * 5000})
    async with open_client(session_app()) as client:
        response = await client.get("/view", headers={"Cookie": f"session={big}"})
        assert (response.status_code, response.json()) == (200, {"session": {}})
    async with open_client(session_app(max_cookie_size=10_000)) as client:
        response = await client.get("/view", headers={"Cookie": f"session={big}"})
        assert response.json() == {"session": {"blob": "x" * 5000}}


async def test_writing_an_oversized_cookie_warns(
    open_client: OpenClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="toolkit"):
        async with open_client(session_app()) as client:
            response = await client.post("/update", json={"blob": "x" * 5000})
    assert response.status_code == 200
    assert "over max_cookie_size=4096" in caplog.text


# ----------------------------------------------------------------------------- server-side


async def test_server_side_session_round_trip(open_client: OpenClient) -> None:
    store = MemorySessionStore()
    async with open_client(session_app(store=store)) as client:
        response = await client.post("/update", json={"cart": [1, 2]})
        cookie = response.headers["set-cookie"]
        session_id = itsdangerous.TimestampSigner(SECRET).unsign(cookie.split(";")[0][8:])
        # The cookie holds the id only; the data is in the store.
        assert b"cart" not in session_id
        assert await store.get(session_id.decode()) == {"cart": [1, 2]}

        assert (await client.get("/view")).json() == {"session": {"cart": [1, 2]}}
        response = await client.post("/update", json={"more": True})
        assert "set-cookie" in response.headers
        assert await store.get(session_id.decode()) == {"cart": [1, 2], "more": True}

        response = await client.post("/clear")
        assert "session=null" in response.headers["set-cookie"]
        assert len(store) == 0
        assert (await client.get("/view")).json() == {"session": {}}


async def test_server_side_session_expires_with_the_store(open_client: OpenClient) -> None:
    now = [1000.0]
    store = MemorySessionStore(clock=lambda: now[0])
    async with open_client(session_app(store=store, max_age=60)) as client:
        await client.post("/update", json={"user": "alice"})
        now[0] += 59
        assert (await client.get("/view")).json() == {"session": {"user": "alice"}}
        now[0] += 2
        assert (await client.get("/view")).json() == {"session": {}}


async def test_unknown_session_id_is_never_adopted(open_client: OpenClient) -> None:
    store = MemorySessionStore()
    planted = signed_cookie(b"attacker-chosen-id")
    async with open_client(session_app(store=store)) as client:
        response = await client.post(
            "/update", json={"user": "alice"}, headers={"Cookie": f"session={planted}"}
        )
        assert response.json() == {"session": {"user": "alice"}}
    assert await store.get("attacker-chosen-id") is None
    assert len(store) == 1


async def test_clearing_rotates_the_session_id(open_client: OpenClient) -> None:
    store = MemorySessionStore()
    async with open_client(session_app(store=store)) as client:
        first = (await client.post("/update", json={"visits": 1})).headers["set-cookie"]
        second = (await client.post("/login")).headers["set-cookie"]
        assert first.split(";")[0] != second.split(";")[0]
        assert len(store) == 1  # the old id is gone
        assert (await client.get("/view")).json() == {"session": {"user": "alice"}}


async def test_server_side_session_ignores_tampered_and_oversized_cookies(
    open_client: OpenClient,
) -> None:
    store = MemorySessionStore()
    async with open_client(session_app(store=store)) as client:
        cookie = (await client.post("/update", json={"user": "alice"})).headers["set-cookie"]
        value = cookie.split(";")[0].removeprefix("session=")
        # Tamper with the signature's first character: its last may hold only padding bits.
        signed, _, signature = value.rpartition(".")
        tampered = f"{signed}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
        for bad in (tampered, "x" * 5000, "junk"):
            response = await client.get("/view", headers={"Cookie": f"session={bad}"})
            assert (response.status_code, response.json()) == (200, {"session": {}})


# ----------------------------------------------------------------------------- websockets


async def _websocket(middleware: SessionMiddleware, cookie: str | None) -> list[Message]:
    sent: list[Message] = []
    headers = [(b"cookie", f"session={cookie}".encode())] if cookie else []
    scope: Scope = {"type": "websocket", "path": "/ws", "headers": headers}

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(scope, receive, send)
    return sent


async def test_websocket_reads_the_session_and_saves_changes_made_before_accept() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        session = scope["session"]
        seen.append(dict(session))
        session["visits"] = session.get("visits", 0) + 1
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    middleware = SessionMiddleware(app, secret_key=SECRET)
    sent = await _websocket(middleware, cookie_session({"visits": 1}))
    assert seen == [{"visits": 1}]
    accept_headers = dict(sent[0]["headers"])
    set_cookie = accept_headers[b"set-cookie"].decode()
    payload = itsdangerous.TimestampSigner(SECRET).unsign(set_cookie.split(";")[0][8:])
    assert payload == b64encode(json.dumps({"visits": 2}).encode())
    assert accept_headers[b"vary"] == b"Cookie"
    assert sent[1] == {"type": "websocket.close", "code": 1000}

    # A forged cookie on a handshake: an empty session, no error.
    seen.clear()
    await _websocket(middleware, "forged.cookie.value")
    assert seen == [{}]


async def test_lifespan_passes_through() -> None:
    reached = await scopes_reaching_app(
        partial(SessionMiddleware, secret_key=SECRET), {"type": "lifespan"}
    )
    assert reached == [{"type": "lifespan"}]  # no session added


# ----------------------------------------------------------------------------- Session


def test_session_tracks_reads_and_changes() -> None:
    session = Session({"a": 1, "b": 2})
    assert not session.accessed and not session.modified
    assert session["a"] == 1
    assert session.accessed and not session.modified

    for change in (
        lambda s: s.__setitem__("c", 3),
        lambda s: s.__delitem__("a"),
        lambda s: s.pop("b"),
        lambda s: s.popitem(),
        lambda s: s.setdefault("new", 0),
        lambda s: s.update(x=1),
        lambda s: s.__ior__({"y": 2}),
        lambda s: s.clear(),
    ):
        session = Session({"a": 1, "b": 2})
        change(session)
        assert session.modified, change

    session = Session({"a": 1})
    session.pop("missing", None)
    session.setdefault("a", 5)
    assert not session.modified
    for read in (len, list, lambda s: "a" in s, lambda s: s.get("a"), lambda s: s.items()):
        session = Session({"a": 1})
        read(session)
        assert session.accessed and not session.modified
