"""The bridge from one HTTP request on a connection to an ASGI app: the `http` scope, `receive`
(the body, then `http.disconnect` once the client is gone or the response is done) and `send`
(Content-Length when the whole body comes in one message, chunked otherwise; each chunk is
written as it comes, so a stream's first chunk leaves before its generator ends). Also the
ASGI lifespan of an ingress app (FastAPI startup/shutdown events)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote

from .protocol import HttpConnection, HttpRequest, head_bytes

log = logging.getLogger("ray.serve")
ASGI = {"version": "3.0", "spec_version": "2.3"}


def make_scope(
    request: HttpRequest, conn: HttpConnection, root_path: str, strip: bool
) -> dict[str, Any]:
    raw_path = request.target.partition(b"?")[0]
    path = unquote(request.path) if "%" in request.path else request.path
    if root_path and strip and (path == root_path or path.startswith(root_path + "/")):
        path = path[len(root_path) :] or "/"
    return {
        "type": "http",
        "asgi": ASGI,
        "http_version": request.version[5:],
        "method": request.method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": request.query,
        "root_path": root_path,
        "headers": request.headers,
        "client": conn.peer,
        "server": conn.sock,
        "state": {},
    }


class Exchange:
    """`receive` and `send` of one request; `extra_headers` go on the response."""

    def __init__(
        self, request: HttpRequest, conn: HttpConnection, extra_headers: list[Any]
    ) -> None:
        self.request, self.conn = request, conn
        self.extra_headers = extra_headers
        self._body_sent = False
        self.started = False  # http.response.start seen
        self.head_written = False
        self.complete = False
        self.chunked = False
        self.status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._done: asyncio.Future[None] | None = None  # made when someone waits for it

    async def receive(self) -> dict[str, Any]:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self.request.body, "more_body": False}
        if not self.complete and not self.conn.lost.done():
            if self._done is None:
                self._done = asyncio.get_running_loop().create_future()
            await asyncio.wait([self._done, self.conn.lost], return_when=asyncio.FIRST_COMPLETED)
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            self.status = int(message["status"])
            self._headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]
        elif kind == "http.response.body":
            if not self.started or self.complete:
                raise RuntimeError("http.response.body sent before the start, or after the end")
            await self._body(bytes(message.get("body", b"")), bool(message.get("more_body")))
        elif kind == "http.response.trailers":
            pass

    async def _body(self, body: bytes, more: bool) -> None:
        conn, head = self.conn, self.request.method == "HEAD"
        if not self.head_written:
            self.head_written = True
            headers = self._headers + self.extra_headers
            has_length = any(k == b"content-length" for k, _ in headers)
            if not more and not has_length:
                headers.append((b"content-length", b"%d" % len(body)))
            elif not has_length and self.status >= 200 and self.status not in (204, 304):
                if self.request.version == "HTTP/1.1":
                    self.chunked = True
                    headers.append((b"transfer-encoding", b"chunked"))
                else:
                    self.request.keep_alive = False
            if not self.request.keep_alive:
                headers.append((b"connection", b"close"))
            data = head_bytes(self.status, headers)
            if not head:
                data += self._frame(body, more)
            conn.write(data)
        elif not head:
            conn.write(self._frame(body, more))
        if not more:
            self._finish()
        else:
            await conn.drain()

    def _frame(self, body: bytes, more: bool) -> bytes:
        if not self.chunked:
            return body
        data = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
        return data if more else data + b"0\r\n\r\n"

    def _finish(self) -> None:
        self.complete = True
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def abort(self) -> None:
        """The app failed after starting a response: the client must not wait for the rest."""
        self.request.keep_alive = False
        self.conn.closing = True
        self._finish()


async def lifespan(app: Any, phase: str) -> None:
    """Run the ASGI lifespan `startup` or `shutdown` of an ingress app. Apps that do not
    speak lifespan (they raise, or never answer) are left alone."""
    state = _LIFESPANS.setdefault(id(app), _Lifespan(app))
    await state.run(phase)


class _Lifespan:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI, "state": {}}
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception as exc:
            await self.outbox.put({"type": "unsupported", "error": exc})

    async def run(self, phase: str) -> None:
        if self.task is None:
            if phase == "shutdown":
                return
            self.task = asyncio.get_running_loop().create_task(self._main())
        elif self.task.done():
            return
        await self.inbox.put({"type": f"lifespan.{phase}"})
        reply = await self.outbox.get()
        if reply["type"] == f"lifespan.{phase}.failed":
            raise RuntimeError(f"the ASGI app's {phase} failed: {reply.get('message', '')}")
        if reply["type"] == "unsupported":
            log.debug("the ingress app does not speak ASGI lifespan: %s", reply["error"])


_LIFESPANS: dict[int, _Lifespan] = {}
