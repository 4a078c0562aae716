"""``Jinja2Templates``: HTML responses rendered from Jinja2 templates.

Autoescaping is on for every template but ``.txt`` ones, templates get ``url_for`` (the
request's), and context processors add to every context. With ``enable_async=True`` the
template renders with ``render_async`` when the response is sent, so a template may await.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from toolkit.background import BackgroundTask
from toolkit.datastructures import URL
from toolkit.requests import Request
from toolkit.responses import HTMLResponse
from toolkit.types import Receive, Scope, Send

try:
    import jinja2
except ImportError as _import_error:  # pragma: no cover - an optional dependency
    raise ImportError(
        "Jinja2Templates needs jinja2: pip install 'toolkit[full]'"
    ) from _import_error

__all__ = ["Jinja2Templates"]

ContextProcessor = Callable[[Request], dict[str, Any]]


class _TemplateResponse(HTMLResponse):
    """A rendered template; keeps ``template`` and ``context`` for tests to inspect.

    A synchronous environment renders at construction; an async one renders when sent (the
    ``Content-Length`` is set then).
    """

    def __init__(
        self,
        template: jinja2.Template,
        context: dict[str, Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.template = template
        self.context = context
        self._rendered = not template.environment.is_async
        content = template.render(context) if self._rendered else None
        super().__init__(content, status_code, headers, media_type, background)
        if not self._rendered:
            del self.headers["content-length"]

    async def send_response(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._rendered:
            self.body = self.render(await self.template.render_async(self.context))
            self.headers["content-length"] = str(len(self.body))
            self._rendered = True
        if "http.response.debug" in scope.get("extensions", {}):
            debug_info = {"template": self.template, "context": self.context}
            await send({"type": "http.response.debug", "info": debug_info})
        await super().send_response(scope, receive, send)


class Jinja2Templates:
    """Templates from ``directory`` (one path or several), or from a ready ``env``.

    ``env_options`` go to the ``jinja2.Environment`` built for ``directory`` (for example
    ``enable_async=True``). ``context_processors`` are called with the request for each
    response and their dicts merged into its context.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        *,
        context_processors: list[ContextProcessor] | None = None,
        env: jinja2.Environment | None = None,
        **env_options: Any,
    ) -> None:
        if (directory is None) == (env is None):
            raise TypeError("Pass either 'directory' or 'env' to Jinja2Templates, not both.")
        if env is not None and env_options:
            raise TypeError("Environment options cannot be combined with a ready 'env'.")
        self.context_processors = list(context_processors or ())
        if env is None:
            env_options.setdefault("loader", jinja2.FileSystemLoader(directory))  # type: ignore[arg-type]
            env_options.setdefault(
                "autoescape", jinja2.select_autoescape(disabled_extensions=("txt",), default=True)
            )
            env = jinja2.Environment(**env_options)
        self.env = env
        self._setup_env_defaults(env)

    def _setup_env_defaults(self, env: jinja2.Environment) -> None:
        @jinja2.pass_context
        def url_for(context: Mapping[str, Any], name: str, /, **path_params: Any) -> URL:
            request: Request = context["request"]
            return request.url_for(name, **path_params)

        env.globals.setdefault("url_for", url_for)

    def get_template(self, name: str) -> jinja2.Template:
        """The template called ``name`` (``jinja2.TemplateNotFound`` if there is none)."""
        return self.env.get_template(name)

    def TemplateResponse(
        self,
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> _TemplateResponse:
        """An HTML response of template ``name`` rendered with ``context``, the request and
        whatever the context processors add."""
        context = {} if context is None else context
        context.setdefault("request", request)
        for context_processor in self.context_processors:
            context.update(context_processor(request))
        return _TemplateResponse(
            self.get_template(name),
            context,
            status_code=status_code,
            headers=headers,
            media_type=media_type,
            background=background,
        )
