"""What every benchmark app shares: the payloads, the decoy routes and three pure-ASGI middlewares.

Every framework routes the same paths and runs the very same middleware code, so a difference
in the figures is a difference in the framework.
"""

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HELLO = "Hello, World!"

# POST /echo sends these bytes (about 1 KB of JSON) and expects the same value back.
ECHO_PAYLOAD = {
    "id": 1234567,
    "name": "benchmark payload",
    "active": True,
    "ratio": 0.125,
    "tags": ["alpha", "beta", "gamma", "delta", "epsilon"],
    "owner": {"id": 42, "login": "octo", "email": "octo@example.com"},
    "items": [
        {"sku": f"SKU-{i:05d}", "qty": i, "price": 9.5 + i, "note": f"item number {i}"}
        for i in range(12)
    ],
}
ECHO_BODY = json.dumps(ECHO_PAYLOAD, separators=(",", ":")).encode()

# GET /gzip/stream streams 1 MiB of JSON lines in 16 chunks of 64 KiB through GZipMiddleware.
# Chunks this size are compressed inline by both frameworks (each sends chunks of 128 KiB or
# more to a worker thread), so the figures compare the middleware around zlib, not thread hops.
GZIP_CHUNK_SIZE = 64 * 1024
_JSON_LINES = "".join(
    f'{{"id":{i},"name":"item number {i}","status":"active","tags":["alpha","beta"]}}\n'
    for i in range(16_000)
).encode()
GZIP_BODY = _JSON_LINES[: 16 * GZIP_CHUNK_SIZE]
assert len(GZIP_BODY) == 16 * GZIP_CHUNK_SIZE
GZIP_CHUNKS = [
    GZIP_BODY[start : start + GZIP_CHUNK_SIZE]
    for start in range(0, len(GZIP_BODY), GZIP_CHUNK_SIZE)
]


async def gzip_chunks() -> AsyncIterator[bytes]:
    """The body of GET /gzip/stream, chunk by chunk, as a streamed response's iterator."""
    for chunk in GZIP_CHUNKS:
        yield chunk


# GET /users/{user_id:int} is listed behind these 50 routes: five shapes, ten of each. Two shapes
# share the /users/ prefix, so a router cannot reject them on the first segment.
DECOY_PATHS = [
    path
    for i in range(10)
    for path in (
        f"/api/v{i}/items/{{item_id:int}}",
        f"/orgs{i}/{{org}}/repos/{{repo}}",
        f"/users/{{user_id:int}}/posts{i}",
        f"/users/settings{i}",
        f"/files{i}/{{file_path:path}}",
    )
]


class PassThrough:
    """Pure ASGI middleware that only calls the next app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class CountRequests:
    """Pure ASGI middleware with a side effect: counts HTTP requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.count += 1
        await self.app(scope, receive, send)


class AddResponseHeader:
    """Pure ASGI middleware that wraps ``send`` to add ``x-asgi-middleware: 1`` to the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-asgi-middleware", b"1")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


# Outermost first, in the order of a ``middleware=[...]`` list.
PURE_ASGI_MIDDLEWARE = (PassThrough, CountRequests, AddResponseHeader)
