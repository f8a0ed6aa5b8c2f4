"""Fixtures for the API tests: the real app in a real waitress server on a free port, fed by a
behavioural fake of the daemon's state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_support import ApiClient, FakeState, LiveApi, app_for

from reconciler.api import ApiServer
from reconciler.metrics import Metrics


@pytest.fixture
def make_api() -> Iterator[Callable[..., LiveApi]]:
    """Start a live API; keyword arguments override create_app's (e.g. webhook_secret=None)."""
    servers: list[ApiServer] = []

    def start(**overrides: Any) -> LiveApi:
        state, metrics = FakeState(), Metrics()
        server = ApiServer(app_for(state, metrics=metrics, **overrides), port=0, threads=4)
        server.start()
        servers.append(server)
        return LiveApi(state, metrics, server, ApiClient(f"http://127.0.0.1:{server.port}"))

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def api(make_api: Callable[..., LiveApi]) -> LiveApi:
    return make_api()
