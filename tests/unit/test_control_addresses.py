"""How the reconciler reaches what it published: `control.ingress_version` against a real HTTP
server answering plain text (as HAProxy does), local addresses and URLs, the control port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from reconciler.runtime.control import base_url, ingress_version, local_address
from reconciler.runtime.observe import published_url


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
    with socket.socket() as bound:  # bound, never listening: the port is ours and refuses
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        assert ingress_version("127.0.0.1", port, "/-/config-version") is None


@pytest.mark.parametrize(
    ("bind", "local", "url"),
    [
        ("0.0.0.0", "127.0.0.1", "http://127.0.0.1:8000"),
        ("", "127.0.0.1", "http://127.0.0.1:8000"),
        ("::", "::1", "http://[::1]:8000"),
        ("0:0::0", "::1", "http://[::1]:8000"),
        ("localhost", "localhost", "http://localhost:8000"),
        ("::1", "::1", "http://[::1]:8000"),
        ("10.0.0.5", "10.0.0.5", "http://10.0.0.5:8000"),
        ("fd00::5", "fd00::5", "http://[fd00::5]:8000"),
    ],
)
def test_addresses_and_urls(bind: str, local: str, url: str) -> None:
    # an IPv6 host made `http://::1:8000`, whose port urlsplit cannot read: every pass failed
    assert local_address(bind) == local
    assert base_url(local, 8000) == url


def test_an_ipv6_ingress_answers_its_version() -> None:
    class V6(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    try:
        srv = V6(("::1", 0), _Versions)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv.answer = b"abc\n"  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        assert ingress_version("::1", srv.server_address[1], "/-/config-version") == "abc"
    finally:
        srv.shutdown()
        srv.server_close()


WILDCARD_PORTS = [  # Docker 20.10 publishing on 0.0.0.0: one host port per family
    {"IP": "::", "PrivatePort": 8000, "PublicPort": 49154, "Type": "tcp"},
    {"IP": "0.0.0.0", "PrivatePort": 8000, "PublicPort": 49153, "Type": "tcp"},
    {"IP": "0.0.0.0", "PrivatePort": 9000, "PublicPort": 49100, "Type": "tcp"},
]


def test_the_control_port_of_our_address_family_is_used() -> None:
    assert published_url("127.0.0.1", WILDCARD_PORTS) == "http://127.0.0.1:49153"
    assert published_url("::1", WILDCARD_PORTS) == "http://[::1]:49154"
    only_v4 = [p for p in WILDCARD_PORTS if p["IP"] == "0.0.0.0"]
    assert published_url("::1", only_v4) == "http://[::1]:49153"  # no IPv6 entry: the one there is
    assert published_url("127.0.0.1", [{"PrivatePort": 8000}]) is None  # not published
