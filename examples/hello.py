"""The JSON hello-world: ``python3 dev.py serve``, then open http://127.0.0.1:8000/."""

from toolkit.applications import App
from toolkit.requests import Request
from toolkit.responses import JSONResponse
from toolkit.routing import Route


async def homepage(request: Request) -> JSONResponse:
    return JSONResponse({"message": "Hello, toolkit!"})


app = App(debug=True, routes=[Route("/", homepage)])
