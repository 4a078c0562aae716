"""The benchmark app in Starlette. toolkit_app.py is this file with the imports changed."""

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from .common import DECOY_PATHS, HELLO, PURE_ASGI_MIDDLEWARE, gzip_chunks


async def plaintext(request: Request) -> PlainTextResponse:
    """The plaintext scenario: a fixed text body."""
    return PlainTextResponse(HELLO)


async def json_endpoint(request: Request) -> JSONResponse:
    """The json scenario: a small dict as JSON."""
    return JSONResponse({"message": HELLO})


async def echo(request: Request) -> JSONResponse:
    """The echo scenario: the request's JSON body, parsed and sent back."""
    return JSONResponse(await request.json())


async def user(request: Request) -> JSONResponse:
    """The users scenario: the int path parameter, as JSON."""
    return JSONResponse({"user_id": request.path_params["user_id"]})


async def gzip_stream(request: Request) -> StreamingResponse:
    """The gzip scenario: 1 MiB of JSON lines, streamed in 64 KiB chunks."""
    return StreamingResponse(gzip_chunks(), media_type="application/x-ndjson")


async def decoy(request: Request) -> PlainTextResponse:
    """One of the 50 decoy routes; never requested."""
    return PlainTextResponse("decoy")


class AddDispatchHeader(BaseHTTPMiddleware):
    """Dispatch-style middleware: sees the response object and adds ``x-dispatch: 1``."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """Add the header to whatever the app answers."""
        response = await call_next(request)
        response.headers["x-dispatch"] = "1"
        return response


pure_asgi_middleware = [Middleware(cls) for cls in PURE_ASGI_MIDDLEWARE]

routes = [
    Route("/plaintext", plaintext),
    Route("/json", json_endpoint),
    Route("/echo", echo, methods=["POST"]),
    Route("/mw-asgi/plaintext", plaintext, middleware=pure_asgi_middleware),
    Route(
        "/mw-base/plaintext",
        plaintext,
        middleware=[*pure_asgi_middleware, Middleware(AddDispatchHeader)],
    ),
    Route("/gzip/stream", gzip_stream, middleware=[Middleware(GZipMiddleware)]),
    *[Route(path, decoy) for path in DECOY_PATHS],
    Route("/users/{user_id:int}", user),
]

app = Starlette(routes=routes)
