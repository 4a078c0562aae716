"""pytest fixtures for toolkit apps, built from your ``app`` fixture: ``client``, ``live_server``.

pytest loads this module through the ``pytest11`` entry point (or list it yourself:
``pytest_plugins = ["toolkit.testing.pytest_plugin"]``). It defines fixtures only, no hooks.
Both fixtures are async, so they run under pytest-trio, inside the test's own ``trio.run``;
turn on trio mode so that plain ``async def`` tests and fixtures just work::

    # pyproject.toml
    [tool.pytest.ini_options]
    trio_mode = true

    # conftest.py
    @pytest.fixture
    def app():
        return App(routes=[...])

    # test_home.py
    async def test_home(client):
        response = await client.get("/")
        assert response.status_code == 200

    async def test_over_real_sockets(live_server):
        async with httpx.AsyncClient(base_url=live_server.url) as http:
            ...

Without trio mode, mark each test ``@pytest.mark.trio``. pytest-trio fixtures are function
scoped, so every test gets a fresh client (lifespan included) or server. All teardown lives in
the context managers' exits, not after ``yield``, so it runs even when pytest-trio cancels.
Override either fixture by defining one with the same name in your conftest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from toolkit.testclient import AsyncTestClient
    from toolkit.testing.live import LiveServer
    from toolkit.types import ASGIApp

# toolkit modules are imported inside the fixtures: pytest loads this plugin in every run, and a
# project that never asks for these fixtures should not pay for (or break on) their imports.


@pytest.fixture
async def client(app: ASGIApp) -> AsyncIterator[AsyncTestClient]:
    """An ``AsyncTestClient`` on ``app``, with its lifespan started; shut down after the test."""
    from toolkit.testclient import AsyncTestClient

    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.fixture
async def live_server(app: ASGIApp) -> AsyncIterator[LiveServer]:
    """``app`` served by hypercorn on 127.0.0.1 and a free port (``.url``, ``.host``, ``.port``).

    Teardown waits for the server's graceful return: in-flight requests and lifespan shutdown.
    """
    from toolkit.testing.live import live_server as serve_live

    async with serve_live(app) as server:
        yield server
