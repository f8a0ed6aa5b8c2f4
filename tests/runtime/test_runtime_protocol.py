"""The replica's HTTP/1.1 server as a local process, over raw sockets: keep-alive, pipelined
requests answered in order, chunked request bodies, streamed (chunked) responses, Connection:
close, HTTP/1.0, Expect: 100-continue, and the size limits."""

from __future__ import annotations

import socket
from collections.abc import Callable

from runtime_support import LocalReplica

Start = Callable[..., LocalReplica]


def _connect(r: LocalReplica) -> socket.socket:
    return socket.create_connection(("127.0.0.1", r.port), timeout=10)


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[bytes, dict[str, str], bytes]:
    """One response from `sock` (leftover bytes stay in `buf`): status line, headers, body."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before a response head")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    if lines[0].split(b" ")[1].startswith(b"1"):
        return lines[0], headers, b""  # an interim response has no body
    if "content-length" in headers:
        size = int(headers["content-length"])
        while len(buf) < size:
            buf += sock.recv(65536)
        body = bytes(buf[:size])
        del buf[:size]
        return lines[0], headers, body
    assert headers.get("transfer-encoding") == "chunked", headers
    body = b""
    while True:
        while b"\r\n" not in buf:
            buf += sock.recv(65536)
        line, _, rest = bytes(buf).partition(b"\r\n")
        buf[:] = rest
        size = int(line, 16)
        while len(buf) < size + 2:
            buf += sock.recv(65536)
        body += bytes(buf[:size])
        del buf[: size + 2]
        if size == 0:
            return lines[0], headers, body


def test_keep_alive_and_pipelined_requests_in_order(local_replica: Start) -> None:
    r = local_replica("echo", "shop:echo_app")
    r.wait_ready()
    with _connect(r) as sock:
        buf = bytearray()
        requests = b"".join(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
            for b in (b"one", b"two", b"three")
        )
        sock.sendall(requests)  # three requests before reading any answer
        bodies = [_read_response(sock, buf)[2] for _ in range(3)]
        assert bodies == [b"one", b"two", b"three"]
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nfour")
        status, headers, body = _read_response(sock, buf)
        assert status == b"HTTP/1.1 200 OK" and body == b"four" and "x-request-id" in headers


def test_chunked_request_body_and_expect_continue(local_replica: Start) -> None:
    r = local_replica("echo", "shop:echo_app")
    r.wait_ready()
    with _connect(r) as sock:
        buf = bytearray()
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        assert _read_response(sock, buf)[2] == b"hello world"
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        assert _read_response(sock, buf)[0] == b"HTTP/1.1 100 Continue"
        sock.sendall(b"ok")
        assert _read_response(sock, buf)[2] == b"ok"


def test_connection_close_and_http_1_0(local_replica: Start) -> None:
    r = local_replica("echo", "shop:echo_app")
    r.wait_ready()
    for request in (
        b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
        b"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\na",
    ):
        with _connect(r) as sock:
            buf = bytearray()
            sock.sendall(request)
            _, headers, body = _read_response(sock, buf)
            assert body == b"a" and headers["connection"] == "close"
            assert sock.recv(10) == b""  # the server closed it


def test_bad_and_oversized_requests_are_refused(local_replica: Start) -> None:
    r = local_replica("echo", "shop:echo_app", SERVE_MAX_BODY_BYTES="1000")
    r.wait_ready()
    cases = [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", b"413"),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
    ]
    for request, status in cases:
        with _connect(r) as sock:
            sock.sendall(request)
            assert _read_response(sock, bytearray())[0].split(b" ")[1] == status, request[:40]
    assert (r.state() or {}).get("initialized")  # the replica is still fine


def test_streamed_response_is_chunked_and_the_connection_reusable(local_replica: Start) -> None:
    r = local_replica("Streamer", "shop:stream_app")
    r.wait_ready()
    with _connect(r) as sock:
        buf = bytearray()
        for _ in range(2):
            sock.sendall(b"GET /?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
            _, headers, body = _read_response(sock, buf)
            assert headers["transfer-encoding"] == "chunked" and body == b"0\n1\n2\n"
