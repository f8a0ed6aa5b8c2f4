"""HTTP calls from the reconciler to a replica's control endpoints (its published port).

Standard library only: these are a few small JSON requests, no client library needed. A
`token` (the Swarm engine's: there the port is published on every node's network) goes in the
X-Serve-Token header; the replica then refuses every control call without it but /-/ready.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import urllib.parse
from typing import Any

from reconciler.errors import EngineError
from reconciler.model import JSONValue


def local_address(bind_host: str) -> str:
    """Where this host reaches a port published on `bind_host`: loopback for a wildcard."""
    if not bind_host:
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(bind_host)
    except ValueError:
        return bind_host  # a host name
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return bind_host


def base_url(host: str, port: int) -> str:
    """`http://host:port`, with an IPv6 literal in brackets (`http://[::1]:8000`)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


TOKEN_HEADER = "X-Serve-Token"


def _request(
    url: str, method: str, path: str, body: bytes | None, timeout: float, token: str = ""
) -> tuple[int, Any]:
    """(status, the body parsed as JSON, or as text when it is not JSON)."""
    status, raw = _exchange(url, method, path, body, timeout, token)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def _exchange(
    url: str, method: str, path: str, body: bytes | None, timeout: float, token: str = ""
) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers[TOKEN_HEADER] = token
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def is_ready(url: str, timeout: float = 1.0) -> bool:
    """`GET /-/ready` answers 200 (initialized, not draining). Never raises."""
    try:
        return _request(url, "GET", "/-/ready", None, timeout)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def health_error(url: str, timeout: float, token: str = "") -> str | None:
    """`GET /-/healthz`: None when the replica answers 200, else why not (the user's
    check_health() error as `ExcType: message` when it raised or timed out). Never raises."""
    try:
        status, data = _request(url, "GET", "/-/healthz", None, timeout, token)
    except (OSError, http.client.HTTPException) as e:
        return f"health check failed: {str(e) or type(e).__name__}"
    return None if status == 200 else _error_text(data, status, "health check")


def state(url: str, timeout: float = 2.0, token: str = "") -> dict[str, Any] | None:
    """`GET /-/state`, or None if the replica does not answer."""
    try:
        status, data = _request(url, "GET", "/-/state", None, timeout, token)
    except (OSError, http.client.HTTPException):
        return None
    return data if status == 200 and isinstance(data, dict) else None


def reconfigure(
    url: str, user_config: JSONValue, config_hash: str, timeout: float, token: str = ""
) -> str:
    """Hand a new user_config to the replica; returns the hash it now runs."""
    body = json.dumps({"user_config": user_config, "user_config_hash": config_hash})
    try:
        status, data = _request(url, "POST", "/-/reconfigure", body.encode("utf-8"), timeout, token)
    except (OSError, http.client.HTTPException) as e:
        raise EngineError(f"replica at {url} did not answer reconfigure: {e}") from e
    if status != 200 or not isinstance(data, dict):
        raise EngineError(_error_text(data, status, "reconfigure"))
    return str(data.get("user_config_hash", config_hash))


def _error_text(data: Any, status: int, what: str) -> str:
    if isinstance(data, dict) and "error" in data:
        kind = data.get("type")
        return f"{kind}: {data['error']}" if kind else str(data["error"])
    return f"{what} failed with HTTP {status}: {str(data)[:500]}"


def ingress_version(host: str, port: int, path: str, timeout: float = 1.0) -> str | None:
    """What the ingress at host:port says its config version is; None when it does not answer.
    The answer is plain text, compared as it is: a hex digest such as `168251747435e136` is also
    a JSON number, and read as one it came back as `1.68251747435e+147`."""
    try:
        status, body = _exchange(base_url(host, port), "GET", path, None, timeout)
    except (OSError, http.client.HTTPException):
        return None
    return body.decode("utf-8", "replace").strip() if status == 200 else None
