"""`control.ingress_version` against a real HTTP server answering plain text, as HAProxy does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.runtime.control import ingress_version


class _Versions(BaseHTTPRequestHandler):
    answer = b""

    def do_GET(self) -> None:
        body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Versions)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize(
    "version",
    [
        "168251747435e136",  # a JSON number too: once read back as 1.68251747435e+147 (CI failure)
        "1234567890123456",
        "0123456789abcdef",
        "null",
        "true",
        "9e9999",  # JSON reads it as inf
    ],
)
def test_the_version_comes_back_exactly_as_served(
    server: ThreadingHTTPServer, version: str
) -> None:
    server.answer = version.encode() + b"\n"  # type: ignore[attr-defined]
    assert ingress_version("127.0.0.1", server.server_address[1], "/-/config-version") == version


def test_nothing_listening_is_none() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Versions) as srv:
        port = srv.server_address[1]
    assert ingress_version("127.0.0.1", port, "/-/config-version") is None
