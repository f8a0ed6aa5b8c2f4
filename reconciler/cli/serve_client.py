"""What the commands that talk to a daemon (`status`, `config`, `pin`, `unpin`, `rollback`)
share: the address to talk to (flag, then RECONCILER_ADDRESS, then the default), one request
with a clear message when nothing answers, and the split of a multi-application answer into one
YAML document per application."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any

from reconciler.settings import Exit

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
ADDRESS_ENV = "RECONCILER_ADDRESS"
TIMEOUT_S = 10.0


class ClientError(Exception):
    """A request that could not get an answer worth printing; the message says what to do."""


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-a",
        "--address",
        default=None,
        help=f"address of the reconciler's API (default: ${ADDRESS_ENV}, else {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "-n", "--name", default=None, help="show only the application with this name"
    )


def resolve_address(flag: str | None) -> str:
    address = (flag or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS).strip().rstrip("/")
    return address if "://" in address else f"http://{address}"


def get(address: str, path: str, *, accept: str = "application/json") -> Any:
    """GET address+path; returns the `requests.Response` (any status) or raises ClientError."""
    return send("GET", address, path, headers={"Accept": accept})


def send(
    method: str,
    address: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout_s: float = TIMEOUT_S,
) -> Any:
    """One request; returns the `requests.Response` (any status) or raises ClientError."""
    import requests  # lazily: `reconciler validate` must not pay for it

    try:
        return requests.request(
            method, address + path, headers=headers, json=body, timeout=timeout_s
        )
    except requests.RequestException as exc:
        raise ClientError(
            f"could not reach the reconciler at {address}: {_reason(exc)}. Is `reconciler run` "
            f"running? Pass -a/--address or set {ADDRESS_ENV}."
        ) from exc


def json_body(response: Any, address: str) -> Any:
    """The JSON of a 200 answer, else ClientError naming the status and the server's message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        said = body.get("error") if isinstance(body, dict) else None
        raise ClientError(
            f"the reconciler at {address} answered {response.status_code}"
            + (f": {said}" if said else "")
        )
    if body is None:
        raise ClientError(
            f"the reconciler at {address} did not answer with JSON; "
            "is that address the reconciler's API?"
        )
    return body


def select(entries: list[dict[str, Any]], name: str | None) -> list[dict[str, Any]]:
    """The entries named `name` (all when None); ClientError listing the names when none is."""
    if name is None:
        return entries
    chosen = [e for e in entries if e.get("name") == name]
    if not chosen:
        names = ", ".join(repr(e.get("name")) for e in entries) or "none"
        raise ClientError(f"no application named {name!r} (applications: {names})")
    return chosen


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return int(Exit.INVALID)


def _reason(exc: BaseException) -> str:
    causes = _causes(exc)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused"
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "unknown host"
    if any(isinstance(c, TimeoutError) for c in causes) or "timed out" in str(exc).lower():
        return f"no answer within {TIMEOUT_S:g} s"
    return str(causes[-1])[:300] or type(causes[-1]).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and everything nested in it by requests' and urllib3's wrappers, outermost first."""
    found: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        nested = [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
            *current.args,
        ]
        pending.extend(n for n in nested if isinstance(n, BaseException))
    return found
