"""Shared fixtures: ``open_client`` and ``connect`` run one test body through both test clients."""

from __future__ import annotations

from functools import partial

import pytest

from tests import clients
from tests.clients import Connect, OpenClient


@pytest.fixture(params=["sync", "async"])
def open_client(request: pytest.FixtureRequest) -> OpenClient:
    """``async with open_client(app, **options) as client``: once per test client."""
    return partial(clients.open_client, request.param)


@pytest.fixture
def connect(open_client: OpenClient) -> Connect:
    """``async with connect(app, path, subprotocols=..., headers=..., client=...) as ws``."""
    return partial(clients.connect, open_client)
