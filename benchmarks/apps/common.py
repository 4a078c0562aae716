"""What every benchmark app shares: the payloads, the decoy routes and three pure-ASGI middlewares.

Every framework routes the same paths and runs the very same middleware code, so a difference
in the figures is a difference in the framework.
"""

import json
from collections.abc import Awaitable, Callable, MutableMapping
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
