"""The load tests' client against a real local HTTP server: it sends exactly rate x seconds
requests, counts answers, errors and marked bodies, and reports percentiles from due times."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from waitress.server import create_server

from tests.load_client import build_rateload, hold_rate


@pytest.fixture
def server() -> Iterator[str]:
    calls = {"n": 0}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        calls["n"] += 1
        if environ.get("QUERY_STRING") == "fail":
            body, status = b'{"error": "no"}', "500 Internal Server Error"
        else:
            body, status = b'{"status": "UPDATING"}' if calls["n"] % 2 else b"{}", "200 OK"
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    srv = create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}/status"
    srv.close()


def test_the_client_holds_the_rate_and_counts_what_came_back(server: str) -> None:
    result = hold_rate(server, rate=200, seconds=1.0, marker="UPDATING")
    assert result.sent == 200 and result.errors == 0, result.summary()
    assert 90 <= result.marked <= 110  # every other answer holds the marker
    assert 0 < result.ms["p50"] <= result.ms["p99"] <= result.ms["max"] < 1000
    assert result.client.startswith("c") == (build_rateload() is not None)


def test_the_client_counts_error_answers(server: str) -> None:
    result = hold_rate(server + "?fail", rate=100, seconds=0.5)
    assert result.sent == 50 and result.errors == 50
