"""The replica's HTTP server: control endpoints under /-/, everything else to the user's code."""

from __future__ import annotations

import json
import sys
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .replica import Replica
from .request import Encoded, Headers, Request, encode_error, encode_result, error_body

JSON = "application/json"


class ReplicaServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, port: int, replica: Replica) -> None:
        self.replica = replica
        super().__init__(("0.0.0.0", port), Handler)


def _json(status: int, value: Any) -> Encoded:
    return status, JSON, json.dumps(value).encode("utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes; with Nagle on, the body waits for the client's delayed
    # ACK of the headers (40 ms) on every keep-alive request after the first.
    disable_nagle_algorithm = True
    server: ReplicaServer

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs stay off: the container log is where the engine looks for errors."""

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._chunked_body()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _chunked_body(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, encoded: Encoded) -> None:
        status, content_type, body = encoded
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dispatch(self) -> None:
        body = self._body()
        path = urllib.parse.urlsplit(self.path).path
        replica = self.server.replica
        if path.startswith("/-/"):
            self._send(self._control(replica, path, body))
            return
        request = Request(self.command, self.path, Headers(list(self.headers.items())), body)
        self._send(self._user_call(lambda: encode_result(replica.handle_request(request))))

    def _user_call(self, call: Any) -> Encoded:
        try:
            return call()  # type: ignore[no-any-return]
        except Exception as exc:
            lines = traceback.format_exception(exc)
            text = "".join(lines).rstrip().splitlines()
            # Prefixed so a request's traceback is never taken for the replica's fatal error.
            print("\n".join(f"[request] {line}" for line in text), file=sys.stderr, flush=True)
            return encode_error(exc)

    def _control(self, replica: Replica, path: str, body: bytes) -> Encoded:
        if self.command in ("GET", "HEAD"):
            if path == "/-/ready":
                ok = replica.initialized and not replica.draining
                return _json(200 if ok else 503, {"ready": ok})
            if path == "/-/healthz":
                return self._healthz(replica)
            if path == "/-/state":
                return _json(200, replica.state())
        if self.command == "POST":
            if path == "/-/reconfigure":
                return self._reconfigure(replica, body)
            if path.startswith("/-/call/"):
                return self._handle_call(replica, path, body)
        return _json(
            404, {"error": f"no control endpoint {self.command} {path}", "type": "NotFound"}
        )

    def _healthz(self, replica: Replica) -> Encoded:
        if not replica.initialized:
            waited = time.monotonic() - replica.started_at
            starting = f"the deployment's __init__ has not returned after {waited:.0f}s"
            return _json(503, {"healthy": False, "error": replica.error or starting})
        try:
            replica.check_health()
        except Exception as exc:
            return _json(503, {"healthy": False, **error_body(exc)})
        return _json(200, {"healthy": True})

    def _reconfigure(self, replica: Replica, body: bytes) -> Encoded:
        try:
            data = json.loads(body or b"{}")
            replica.reconfigure(data.get("user_config"), str(data["user_config_hash"]))
        except Exception as exc:
            return encode_error(exc)
        return _json(200, {"user_config_hash": replica.user_config_hash})

    def _handle_call(self, replica: Replica, path: str, body: bytes) -> Encoded:
        parts = [urllib.parse.unquote(p) for p in path[len("/-/call/") :].split("/")]
        if len(parts) != 3:
            return _json(404, {"error": f"bad call path {path}", "type": "NotFound"})
        app, deployment, method = parts
        s = replica.settings
        if (app, deployment) != (s.app, s.deployment):
            message = f"this replica serves {s.app}/{s.deployment}, not {app}/{deployment}"
            return _json(404, {"error": message, "type": "NotFound"})

        def call() -> Encoded:
            data = json.loads(body or b"{}")
            result = replica.call_method(method, data.get("args", []), data.get("kwargs", {}))
            return _json(200, {"result": result})

        return self._user_call(call)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch
