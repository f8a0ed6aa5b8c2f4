"""Handle calls on the wire: POST `/-/call/<app>/<deployment>/<method>` to the router.

An asyncio HTTP/1.1 client on the replica's loop with a pool of kept-alive connections to the
router (HAProxy's :8001), so a call costs no connect. A kept-alive connection the router closed
while idle fails before any reply byte; such a call is sent once more on a fresh connection.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from . import wire

CALL_TIMEOUT_S = 300.0
IDLE_REUSE_S = 2.0  # HAProxy closes client connections idle for 5 s (timeout http-keep-alive)
MAX_IDLE = 32
MAX_HEAD = 64 * 1024


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def close(self) -> None:
        self.writer.close()


class _StaleConnection(Exception):
    """A reused connection was closed before the reply began: safe to send again."""


class Reply:
    def __init__(self, conn: _Conn, status: int, headers: dict[str, str]) -> None:
        self.conn, self.status, self.headers = conn, status, headers
        self.content_type = headers.get("content-type", "")
        self.reusable = headers.get("connection", "").lower() != "close"

    async def chunks(self) -> AsyncIterator[bytes]:
        reader = self.conn.reader
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()).strip():
                        pass
                    return
                yield await reader.readexactly(size)
                await reader.readline()
        elif "content-length" in self.headers:
            yield await reader.readexactly(int(self.headers["content-length"]))
        else:
            self.reusable = False
            yield await reader.read()

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])


class Router:
    """Where handle calls go: the router's address and a pool of idle connections."""

    def __init__(self, router_url: str, token: str = "") -> None:
        parsed = urllib.parse.urlsplit(router_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self._token = token  # the callee checks it: handle calls are control endpoints
        self._idle: list[_Conn] = []

    async def _connect(self) -> tuple[_Conn, bool]:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_REUSE_S and not conn.reader.at_eof():
                return conn, True
            conn.close()
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD)
        return _Conn(reader, writer), False

    def release(self, reply: Reply) -> None:
        if reply.reusable and len(self._idle) < MAX_IDLE:
            reply.conn.idle_since = time.monotonic()
            self._idle.append(reply.conn)
        else:
            reply.conn.close()

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        for _ in range(2):
            conn, reused = await self._connect()
            try:
                return await asyncio.wait_for(
                    self._exchange(conn, path, body, headers, reused), CALL_TIMEOUT_S
                )
            except _StaleConnection:
                conn.close()
            except BaseException:
                conn.close()
                raise
        raise wire.RemoteCallError("the router closed the connection twice before replying")

    async def _exchange(
        self, conn: _Conn, path: str, body: bytes, headers: dict[str, str], reused: bool
    ) -> Reply:
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if self._token:
            lines.append(f"X-Serve-Token: {self._token}")
        lines.append(f"Content-Length: {len(body)}")
        conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            await conn.writer.drain()
            status_line = await conn.reader.readline()
        except (ConnectionError, OSError):
            if reused:
                raise _StaleConnection from None
            raise
        if not status_line:
            if reused:
                raise _StaleConnection
            raise wire.RemoteCallError("the router closed the connection without a reply")
        status = int(status_line.split(b" ", 2)[1])
        found: dict[str, str] = {}
        while True:
            line = await conn.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            found[name.strip().lower()] = value.strip()
        return Reply(conn, status, found)


def failure(reply: Reply, body: bytes) -> wire.RemoteCallError:
    """A reply that is not the callee's own (the router's 503/404, or a JSON error)."""
    import json

    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if isinstance(data, dict) and "error" in data:
        return wire.RemoteCallError(str(data["error"]), str(data.get("type", "")))
    text = body.decode("utf-8", "replace").strip()[:500]
    return wire.RemoteCallError(f"HTTP {reply.status} from the router: {text or 'no body'}")


async def call(router: Router, path: str, payload: bytes, headers: dict[str, str]) -> Any:
    reply = await router.post(path, payload, {"Content-Type": wire.PICKLE, **headers})
    try:
        body = await reply.read()
    except BaseException:
        reply.conn.close()
        raise
    router.release(reply)
    if reply.content_type != wire.PICKLE:
        raise failure(reply, body)
    return wire.unwrap(body)


async def stream(
    router: Router, path: str, payload: bytes, headers: dict[str, str]
) -> AsyncIterator[Any]:
    send = {"Content-Type": wire.PICKLE, wire.STREAM_HEADER: "1", **headers}
    reply = await router.post(path, payload, send)
    finished = False
    try:
        if reply.content_type != wire.PICKLE:
            raise failure(reply, await reply.read())
        frames = wire.FrameReader()
        chunks = reply.chunks()
        async for chunk in chunks:
            for data in frames.feed(chunk):
                try:
                    value = wire.unwrap(data)
                except StopAsyncIteration:
                    finished = True
                    return
                yield value
        raise wire.RemoteCallError("the stream ended without its end mark")
    finally:
        if finished:
            async for _ in chunks:
                pass
            router.release(reply)
        else:
            reply.conn.close()
