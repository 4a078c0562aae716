"""The benchmark app as one hand-written ASGI callable: the floor under any framework's cost.

Routing is a dict lookup on the exact path plus a prefix test for /users/{int}; handlers send
their two messages themselves, with no request or response objects.
"""

import json
import zlib

from .common import (
    DECOY_PATHS,
    GZIP_CHUNKS,
    HELLO,
    PURE_ASGI_MIDDLEWARE,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
)

TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"


async def respond(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    """Send a complete response with a content type and length."""
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def dump(value: object) -> bytes:
    """Serialise compact JSON, as the frameworks' JSONResponse does."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


async def read_body(receive: Receive) -> bytes:
    """Read the whole request body; raise ConnectionError if the client left."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def plaintext(scope: Scope, receive: Receive, send: Send) -> None:
    """The plaintext scenario: a fixed text body."""
    await respond(send, 200, TEXT, HELLO.encode())


async def json_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """The json scenario: a small dict as JSON."""
    await respond(send, 200, JSON, dump({"message": HELLO}))


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The echo scenario: the request's JSON body, parsed and sent back."""
    try:
        value = json.loads(await read_body(receive))
    except ValueError:
        await respond(send, 400, TEXT, b"invalid JSON")
        return
    await respond(send, 200, JSON, dump(value))


async def decoy(scope: Scope, receive: Receive, send: Send) -> None:
    """One of the 50 decoy routes; never requested."""
    await respond(send, 200, TEXT, b"decoy")


async def gzip_stream(scope: Scope, receive: Receive, send: Send) -> None:
    """The gzip scenario by hand: each chunk compressed and flushed as it is sent."""
    accepted = b"".join(value for name, value in scope["headers"] if name == b"accept-encoding")
    headers = [(b"content-type", b"application/x-ndjson")]
    compressor = None
    if b"gzip" in accepted:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
        headers += [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for chunk in GZIP_CHUNKS:
        if compressor is not None:
            chunk = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    last = compressor.flush() if compressor is not None else b""
    await send({"type": "http.response.body", "body": last})


def with_middleware(app: ASGIApp) -> ASGIApp:
    """Wrap ``app`` in the shared pure-ASGI middlewares, outermost first."""
    for middleware in reversed(PURE_ASGI_MIDDLEWARE):
        app = middleware(app)
    return app


def with_dispatch_header(app: ASGIApp) -> ASGIApp:
    """Add ``x-dispatch: 1`` to ``app``'s responses: the mw_base middleware, as pure ASGI."""

    async def add_header(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-dispatch", b"1")]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_with_header)

    return add_header


# Decoy templates are keys of their own: a dict-routed app pays nothing more for them.
ROUTES: dict[str, tuple[str, ASGIApp]] = {
    "/plaintext": ("GET", plaintext),
    "/json": ("GET", json_endpoint),
    "/echo": ("POST", echo),
    "/mw-asgi/plaintext": ("GET", with_middleware(plaintext)),
    "/mw-base/plaintext": ("GET", with_middleware(with_dispatch_header(plaintext))),
    "/gzip/stream": ("GET", gzip_stream),
    **{path: ("GET", decoy) for path in DECOY_PATHS},
}


async def lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown; there is nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Route one HTTP request, or run the lifespan protocol."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    route = ROUTES.get(path)
    if route is not None:
        method, handler = route
        if scope["method"] == method or (method == "GET" and scope["method"] == "HEAD"):
            await handler(scope, receive, send)
        else:
            await respond(send, 405, TEXT, b"Method Not Allowed")
        return
    if path.startswith("/users/"):
        user_id = path[len("/users/") :]
        if user_id.isascii() and user_id.isdigit():
            await respond(send, 200, JSON, dump({"user_id": int(user_id)}))
            return
    await respond(send, 404, TEXT, b"Not Found")
