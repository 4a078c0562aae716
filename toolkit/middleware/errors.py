"""The server-error layer, outermost in every app: a 500 for any unhandled exception.

In production the client gets a plain "Internal Server Error"; with
``debug=True`` it gets the traceback, as HTML or text by its ``Accept``
header. The exception is then re-raised so the server (or an outer ASGI
middleware such as an error tracker) sees it; the server logs it once.
A client that disconnected while its body was being read is not an error.
"""

from __future__ import annotations

import html
import inspect
import logging
import traceback
from typing import Any

from toolkit.concurrency import app_thread_limiter, is_async_callable, run_in_thread
from toolkit.request_scope import SCOPE_KEY, RequestScope, ResponseTracker
from toolkit.requests import ClientDisconnect, Request
from toolkit.responses import HTMLResponse, PlainTextResponse, Response
from toolkit.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("toolkit")

CONTEXT_LINES = 5

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
h1 {{ font-size: 1.4em; color: #b00; }}
.frame {{ margin: 1em 0; border: 1px solid #ddd; border-radius: 4px; }}
.where {{ background: #f4f4f4; padding: .4em .8em; font-family: monospace; }}
pre {{ margin: 0; padding: .4em .8em; overflow-x: auto; }}
.current {{ background: #fdd; display: block; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{request_line}</p>
{frames}
</body>
</html>
"""


class ServerErrorMiddleware:
    """Answers 500 to any exception that reaches it, then re-raises it."""

    def __init__(
        self,
        app: ASGIApp,
        handler: Any = None,
        debug: bool = False,
    ) -> None:
        self.app = app
        self.handler = handler
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        tracker: RequestScope | ResponseTracker | None = scope.get(SCOPE_KEY)
        if tracker is None:  # used outside an App: watch the response go by
            tracker = ResponseTracker(send)
            send = tracker.send
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            logger.debug("Client disconnected during %s %s", scope["method"], scope["path"])
        except Exception as exc:
            if not tracker.response_started:
                await self.respond(exc, scope, receive, send)
            raise

    async def respond(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the 500 for ``exc``: the debug page, the app's 500 handler, or a plain one."""
        request = Request(scope, receive, send)
        if self.debug:
            response = self.debug_response(request, exc)
        elif self.handler is not None:
            response = await self._call_handler(request, exc, scope)
        else:
            response = self.error_response(request, exc)
        await response(scope, receive, send)

    async def _call_handler(self, request: Request, exc: Exception, scope: Scope) -> Response:
        if is_async_callable(self.handler):
            response: Response = await self.handler(request, exc)
        else:
            response = await run_in_thread(
                self.handler, request, exc, limiter=app_thread_limiter(scope)
            )
        return response

    def error_response(self, request: Request, exc: Exception) -> Response:
        """The production answer: a bare 500 that reveals nothing."""
        return PlainTextResponse("Internal Server Error", status_code=500)

    def debug_response(self, request: Request, exc: Exception) -> Response:
        """The ``debug=True`` answer: the traceback, as HTML for browsers, else as text."""
        if "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(self.generate_html(exc, request), status_code=500)
        return PlainTextResponse(self.generate_plain_text(exc), status_code=500)

    def generate_plain_text(self, exc: Exception) -> str:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def generate_html(self, exc: Exception, request: Request | None = None) -> str:
        title = html.escape(f"{type(exc).__name__}: {exc}")
        request_line = ""
        if request is not None:
            request_line = html.escape(f"{request.method} {request.url.path}")
        frame_infos = (
            inspect.getinnerframes(exc.__traceback__, CONTEXT_LINES) if exc.__traceback__ else []
        )
        frames = [self._frame_html(frame_info) for frame_info in reversed(frame_infos)]
        return PAGE.format(title=title, request_line=request_line, frames="\n".join(frames))

    def _frame_html(self, frame_info: inspect.FrameInfo) -> str:
        where = html.escape(
            f"{frame_info.filename}, line {frame_info.lineno}, in {frame_info.function}"
        )
        first_line = frame_info.lineno - (frame_info.index or 0)
        lines = []
        for offset, line in enumerate(frame_info.code_context or ()):
            text = html.escape(f"{first_line + offset:>5} {line.rstrip()}")
            if offset == frame_info.index:
                text = f'<span class="current">{text}</span>'
            lines.append(text)
        code = "\n".join(lines)
        return f'<div class="frame"><div class="where">{where}</div><pre>{code}</pre></div>'
