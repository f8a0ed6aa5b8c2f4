"""DeploymentHandle: calls to another deployment's replicas through the ingress router.

`handle.method.remote(*args, **kwargs)` POSTs JSON to
`{router}/-/call/<app>/<deployment>/<method>` on a worker thread and returns a
`DeploymentResponse` at once: `.result(timeout_s=None)` blocks, `await response` suspends.
Each call opens its own connection, so handles are safe from any number of threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import urllib.parse
from collections.abc import Generator
from typing import Any

CALL_TIMEOUT_S = 300.0


class RemoteCallError(RuntimeError):
    """A handle call failed; `remote_type` is the remote exception's type name."""

    def __init__(self, message: str, remote_type: str = "") -> None:
        super().__init__(f"{remote_type}: {message}" if remote_type else message)
        self.remote_type = remote_type


class Transport:
    """Where handle calls go, and the threads that make them."""

    def __init__(self, router_url: str, max_workers: int = 64) -> None:
        parsed = urllib.parse.urlsplit(router_url)
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, "serve-handle")

    def submit(self, path: str, payload: bytes) -> concurrent.futures.Future[Any]:
        return self._pool.submit(self._post, path, payload)

    def _post(self, path: str, payload: bytes) -> Any:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=CALL_TIMEOUT_S)
        try:
            conn.request("POST", path, payload, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return _decode(response.status, response.read())
        finally:
            conn.close()


def _decode(status: int, body: bytes) -> Any:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if status == 200 and isinstance(data, dict) and "result" in data:
        return data["result"]
    if isinstance(data, dict) and "error" in data:
        raise RemoteCallError(str(data["error"]), str(data.get("type", "")))
    text = body.decode("utf-8", "replace").strip()[:500]
    raise RemoteCallError(f"HTTP {status} from the router: {text or 'no body'}")


class DeploymentResponse:
    """The pending result of one handle call."""

    def __init__(self, future: concurrent.futures.Future[Any]) -> None:
        self._future = future

    def result(self, timeout_s: float | None = None) -> Any:
        return self._future.result(timeout=timeout_s)

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self._future).__await__()


class _Method:
    def __init__(self, handle: DeploymentHandle, method: str) -> None:
        self._handle, self._method = handle, method

    def remote(self, *args: Any, **kwargs: Any) -> DeploymentResponse:
        return self._handle._call(self._method, args, kwargs)


class DeploymentHandle:
    """A handle to one deployment of an application (given to `__init__` in place of a binding)."""

    def __init__(
        self, app: str, deployment: str, transport: Transport, method_name: str = "__call__"
    ) -> None:
        self.app_name, self.deployment_name = app, deployment
        self._transport, self._method_name = transport, method_name

    def options(self, *, method_name: str | None = None, **_ignored: Any) -> DeploymentHandle:
        return DeploymentHandle(
            self.app_name, self.deployment_name, self._transport, method_name or self._method_name
        )

    def remote(self, *args: Any, **kwargs: Any) -> DeploymentResponse:
        return self._call(self._method_name, args, kwargs)

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Method(self, name)

    def _call(self, method: str, args: Any, kwargs: dict[str, Any]) -> DeploymentResponse:
        payload = json.dumps({"args": _resolve(list(args)), "kwargs": _resolve(kwargs)})
        quote = urllib.parse.quote
        path = "/-/call/" + "/".join(
            quote(p, safe="") for p in (self.app_name, self.deployment_name, method)
        )
        return DeploymentResponse(self._transport.submit(path, payload.encode("utf-8")))

    def __repr__(self) -> str:
        return f"DeploymentHandle({self.app_name!r}, {self.deployment_name!r})"


def _resolve(value: Any) -> Any:
    """Responses passed as arguments are resolved first, as Serve does."""
    if isinstance(value, DeploymentResponse):
        return value.result()
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value
