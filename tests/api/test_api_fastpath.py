"""The /status fast path answers the plain forms exactly as the Flask view does, and leaves every
other form (and every error) to Flask."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from api_support import FakeState, app_for, multi_snapshot, single_snapshot
from flask import Flask

from reconciler.api.fastpath import StatusFastPath, plain_status_format
from reconciler.model import LoopStatus

QUERIES = ["", "format=json", "format=yaml", "FORMAT=YAML", "format=xml", "format=", "x=1"]
ACCEPTS = [
    None,
    "",
    "*/*",
    "application/json",
    "application/yaml",
    "text/yaml",
    "application/x-yaml",
    "text/html, */*;q=0.1",
    "application/yaml;q=0.5, application/json",
    "image/png",
]


def _apps(state: FakeState) -> tuple[Flask, Any]:
    app = app_for(state)
    assert isinstance(app.wsgi_app, StatusFastPath)
    return app, app.wsgi_app.app  # with the fast path, and Flask alone


def _answer(wsgi: Any, query: str, accept: str | None) -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/status",
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8265",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        "wsgi.errors": None,
    }
    if accept is not None:
        environ["HTTP_ACCEPT"] = accept
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(wsgi(environ, start_response))
    return got["status"], got["headers"], body


@pytest.mark.parametrize("snapshot", [single_snapshot, multi_snapshot, None])
def test_fast_path_answers_exactly_like_flask(snapshot: Any) -> None:
    state = FakeState()
    if snapshot is not None:
        state.snapshot = snapshot()
    app, flask_only = _apps(state)
    with app.app_context():
        for query in QUERIES:
            for accept in ACCEPTS:
                fast = _answer(app.wsgi_app, query, accept)
                slow = _answer(flask_only, query, accept)
                assert fast[0] == slow[0], (query, accept)
                assert fast[2] == slow[2], (query, accept)
                for header in ("Content-Type", "Content-Length"):
                    assert fast[1].get(header) == slow[1].get(header), (query, accept, header)


def test_plain_forms_are_taken_and_the_rest_left_to_flask() -> None:
    assert plain_status_format("", "") == "json"
    assert plain_status_format("", "*/*") == "json"
    assert plain_status_format("format=yaml", "application/json") == "yaml"  # the query wins
    assert plain_status_format("", "text/yaml") == "yaml"
    assert plain_status_format("format=xml", "") is None  # Flask says 400
    assert plain_status_format("", "text/html, */*;q=0.1") is None  # Flask negotiates
    assert plain_status_format("limit=3", "") is None


def test_fast_path_follows_each_new_snapshot() -> None:
    state = FakeState()
    state.snapshot = single_snapshot()
    app, _ = _apps(state)
    first = _answer(app.wsgi_app, "", None)[2]
    state.snapshot = dataclasses.replace(single_snapshot(), loop=LoopStatus(passes=99))
    second = _answer(app.wsgi_app, "", None)[2]
    assert first != second and b'"passes": 99' in second
