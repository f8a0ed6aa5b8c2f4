"""HTTP/1.1 on asyncio, standard library only: one `HttpConnection` per TCP connection.

Requests on a connection are read and answered one after another (so pipelined requests wait in
the buffer, in order); bodies are read whole (Content-Length or chunked), within MAX_BODY.
Responses are written with Content-Length when the whole body is known, chunked otherwise.
Keep-alive is the HTTP/1.1 default, `Connection: close` and HTTP/1.0 are honoured, `Expect:
100-continue` is answered. No thread per connection or request: everything runs on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("ray.serve")

MAX_HEAD = 64 * 1024
MAX_HEADERS = 128
MAX_BODY = int(os.environ.get("SERVE_MAX_BODY_BYTES", str(100 * 1024 * 1024)))
HIGH_WATER = 1024 * 1024  # stop reading a client that sends faster than we answer
REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 409: "Conflict", 413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}  # fmt: skip


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpRequest:
    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "target", "version")

    def __init__(self, method: str, target: bytes, version: str, headers: list[Any]) -> None:
        self.method, self.target, self.version, self.headers = method, target, version, headers
        raw_path, _, self.query = target.partition(b"?")
        self.path = raw_path.decode("latin-1")
        self.body = b""
        self.keep_alive = version == "HTTP/1.1"

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value  # type: ignore[no-any-return]
        return None


def parse_head(head: bytes) -> HttpRequest:
    lines = head.split(b"\r\n")
    try:
        method, target, version = lines[0].decode("latin-1").split(" ")
    except ValueError:
        raise BadRequest(400, "malformed request line") from None
    if version not in ("HTTP/1.1", "HTTP/1.0") or not method.isalpha() or not target:
        raise BadRequest(400, "malformed request line")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(431, "too many header fields")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name:
            raise BadRequest(400, "malformed header field")
        headers.append((name.lower(), value.strip()))
    request = HttpRequest(method, target.encode("latin-1"), version, headers)
    connection = (request.header(b"connection") or b"").lower()
    if b"close" in connection:
        request.keep_alive = False
    elif b"keep-alive" in connection:
        request.keep_alive = True
    return request


def head_bytes(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Unknown").encode())]
    parts += [b"%s: %s\r\n" % (k, v) for k, v in headers]
    parts.append(b"\r\n")
    return b"".join(parts)


Handler = Callable[[HttpRequest, "HttpConnection"], Awaitable[None]]


class HttpConnection(asyncio.Protocol):
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._buf = bytearray()
        self._eof = False
        self._data: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self.lost = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self.sock: tuple[str, int] | None = None
        self.closing = False

    # --- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.peer = (str(peer[0]), int(peer[1])) if peer else None
        self.sock = (str(sock[0]), int(sock[1])) if sock else None
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep the write side open to finish the response

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake()
        if not self.lost.done():
            self.lost.set_result(None)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _wake(self) -> None:
        if self._data is not None and not self._data.done():
            self._data.set_result(None)

    # --- reading ----------------------------------------------------------------------------

    async def _more(self) -> bool:
        """Wait for more bytes; False at end of input."""
        if self._eof:
            return False
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        self._data = asyncio.get_running_loop().create_future()
        await self._data
        self._data = None
        return True

    async def _read_head(self) -> bytes | None:
        start = 0
        while True:
            end = self._buf.find(b"\r\n\r\n", start)
            if end > MAX_HEAD:
                raise BadRequest(431, "request head too large")
            if end >= 0:
                head = bytes(self._buf[:end])
                del self._buf[: end + 4]
                return head
            if len(self._buf) > MAX_HEAD:
                raise BadRequest(431, "request head too large")
            start = max(0, len(self._buf) - 3)
            if not await self._more():
                if self._buf.strip():
                    raise BadRequest(400, "incomplete request head")
                return None

    async def _read_exact(self, size: int) -> bytes:
        while len(self._buf) < size:
            if not await self._more():
                raise BadRequest(400, "incomplete request body")
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    async def _read_line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 2]
                return line
            if len(self._buf) > MAX_HEAD:
                raise BadRequest(400, "chunk header too long")
            if not await self._more():
                raise BadRequest(400, "incomplete chunked body")

    async def _read_body(self, request: HttpRequest) -> bytes:
        encoding = request.header(b"transfer-encoding")
        length = request.header(b"content-length")
        if encoding is not None:
            if length is not None:
                raise BadRequest(400, "both Content-Length and Transfer-Encoding")
            if encoding.lower() != b"chunked":
                raise BadRequest(501, "only the chunked transfer coding is supported")
            self._continue(request)
            return await self._read_chunked()
        if length is None:
            return b""
        if not length.isdigit() or any(
            v != length for k, v in request.headers if k == b"content-length"
        ):
            raise BadRequest(400, "bad Content-Length")
        size = int(length)
        if size > MAX_BODY:
            raise BadRequest(413, f"request body larger than {MAX_BODY} bytes")
        if size == 0:
            return b""
        self._continue(request)
        if len(self._buf) >= size:  # the common case: it came with the head
            data = bytes(self._buf[:size])
            del self._buf[:size]
            return data
        return await self._read_exact(size)

    def _continue(self, request: HttpRequest) -> None:
        expect = request.header(b"expect")
        if expect is not None and expect.lower() == b"100-continue" and not self._buf:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = (await self._read_line()).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise BadRequest(400, "bad chunk size") from None
            if size == 0:
                while await self._read_line():  # trailers, ignored
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY:
                raise BadRequest(413, f"request body larger than {MAX_BODY} bytes")
            chunks.append(await self._read_exact(size))
            if await self._read_line():
                raise BadRequest(400, "chunk data longer than its size")

    # --- writing ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        if self._drained is not None:
            await self._drained
        if self.lost.done():
            raise ConnectionResetError("the client went away")

    def respond(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, request: HttpRequest
    ) -> None:
        """A whole response in one write."""
        if not request.keep_alive:
            headers = [*headers, (b"connection", b"close")]
        data = head_bytes(status, [*headers, (b"content-length", b"%d" % len(body))])
        self.write(data if request.method == "HEAD" else data + body)

    # --- the request loop -------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while not self.closing:
                head = await self._read_head()
                if head is None:
                    break
                request = parse_head(head)
                request.body = await self._read_body(request)
                await self._handler(request, self)
                if not request.keep_alive:
                    break
        except BadRequest as exc:
            body = str(exc).encode() + b"\n"
            self.write(
                head_bytes(
                    exc.status,
                    [
                        (b"content-type", b"text/plain"),
                        (b"content-length", b"%d" % len(body)),
                        (b"connection", b"close"),
                    ],
                )
                + body
            )
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("error on a connection from %s", self.peer)
        finally:
            if self.transport is not None:
                self.transport.close()


async def serve(handler: Handler, port: int, host: str = "0.0.0.0") -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: HttpConnection(handler), host, port, reuse_address=True, backlog=1024
    )
