"""A minimal Docker Engine API client over a unix socket (standard library only): the lab, its
fixture and the spike read nodes, services and tasks as the Engine API returns them, JSON as is."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any


class EngineError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Engine:
    """One engine (a lab node) at `docker_host` (unix:///path/docker.sock)."""

    def __init__(self, docker_host: str, timeout: float = 30.0) -> None:
        if not docker_host.startswith("unix://"):
            raise ValueError(f"{docker_host}: only unix:// sockets")
        self.path = docker_host.removeprefix("unix://")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        query = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}
        url = path + ("?" + urllib.parse.urlencode(query) if query else "")
        conn = _UnixConnection(self.path, self.timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            try:
                message = json.loads(raw).get("message", raw.decode())
            except ValueError:
                message = raw.decode(errors="replace")
            raise EngineError(resp.status, f"{method} {path}: {message}")
        return json.loads(raw) if raw.strip() else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.call("POST", path, body, **params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.call("DELETE", path, **params)

    # -- swarm objects ----------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.get("/nodes"))

    def services(self, **filters: list[str]) -> list[dict[str, Any]]:
        return list(self.get("/services", filters=filters) if filters else self.get("/services"))

    def tasks(self, **filters: list[str]) -> list[dict[str, Any]]:
        return list(self.get("/tasks", filters=filters))

    def create_service(self, spec: dict[str, Any]) -> str:
        return str(self.post("/services/create", spec)["ID"])

    def remove_service(self, name_or_id: str) -> None:
        try:
            self.delete(f"/services/{name_or_id}")
        except EngineError as exc:
            if exc.status != 404:
                raise

    def events(self, since: float, until: float, **filters: list[str]) -> Iterator[dict[str, Any]]:
        """The events between two times (a bounded read: the stream ends at `until`)."""
        params: dict[str, Any] = {"since": f"{since:.3f}", "until": f"{until:.3f}"}
        if filters:
            params["filters"] = filters
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", "/events?" + urllib.parse.urlencode(
                {k: json.dumps(v) if isinstance(v, dict) else v for k, v in params.items()}))
            resp = conn.getresponse()
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()
