"""The benchmark app in Starlette. toolkit_app.py is this file with the imports changed."""

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from .common import DECOY_PATHS, HELLO, PURE_ASGI_MIDDLEWARE


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


async def decoy(request: Request) -> PlainTextResponse:
    """One of the 50 decoy routes; never requested."""
    return PlainTextResponse("decoy")


routes = [
    Route("/plaintext", plaintext),
    Route("/json", json_endpoint),
    Route("/echo", echo, methods=["POST"]),
    Route(
        "/mw-asgi/plaintext",
        plaintext,
        middleware=[Middleware(cls) for cls in PURE_ASGI_MIDDLEWARE],
    ),
    *[Route(path, decoy) for path in DECOY_PATHS],
    Route("/users/{user_id:int}", user),
]

app = Starlette(routes=routes)
