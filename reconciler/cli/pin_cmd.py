"""`reconciler pin COMMIT`, `reconciler unpin` and `reconciler rollback`: hold a commit whatever
the branch does, follow the branch again, or hold the commit deployed before the running one.
They ask the daemon's API (`-a/--address`, like `status`), with its token."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from reconciler.cli import serve_client
from reconciler.cli.serve_client import ClientError
from reconciler.settings import Exit

TOKEN_ENV, TOKEN_FILE_ENV = "RECONCILER_API_TOKEN", "RECONCILER_API_TOKEN_FILE"
DEFAULT_WAIT_S = 600.0
REQUEST_TIMEOUT_S = 60.0  # the daemon waits up to 20 s for a pin's verdict before "preparing"
_DONE_OK = ("pinned", "unpinned", "not-pinned")


def register(sub: Any) -> None:
    pin = sub.add_parser(
        "pin",
        help="hold one commit whatever the branch does",
        description="Pin a commit: the daemon prepares and validates it like any commit (an "
        "invalid one is refused with its errors, and nothing changes), then applies it and "
        "holds it whatever the branch does, across restarts, until `reconciler unpin`.",
    )
    pin.add_argument("commit", help="the commit: its full or abbreviated id (4+ hex digits)")
    pin.add_argument("--reason", default="", help="why, shown in the dashboard's timeline")
    _common(pin)
    pin.set_defaults(handler=run_pin)
    unpin = sub.add_parser(
        "unpin",
        help="follow the branch again",
        description="Unpin: the daemon follows the branch head again (judged as usual: a "
        "commit it refused is not retried until the branch moves).",
    )
    _common(unpin)
    unpin.set_defaults(handler=run_unpin)
    back = sub.add_parser(
        "rollback",
        help="pin the commit deployed before the running one",
        description="Roll back: pin the commit the branch deployed before the one running now "
        "(again: one further back). The sync loop does not undo it; `reconciler unpin` follows "
        "the branch again.",
    )
    _common(back)
    back.set_defaults(handler=run_rollback)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-a",
        "--address",
        default=None,
        help=f"address of the reconciler's API (default: ${serve_client.ADDRESS_ENV}, else "
        f"{serve_client.DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--token-file",
        default=os.environ.get(TOKEN_FILE_ENV),
        metavar="PATH",
        help=f"file holding the daemon's API token (or set {TOKEN_ENV}) [{TOKEN_FILE_ENV}]",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        metavar="SECONDS",
        help="how long to wait for a commit that is still being prepared (default: %(default)s)",
    )


def run_pin(args: argparse.Namespace) -> int:
    return _run(args, "POST", "/pin", {"commit": args.commit, "reason": args.reason})


def run_unpin(args: argparse.Namespace) -> int:
    return _run(args, "DELETE", "/pin", None)


def run_rollback(args: argparse.Namespace) -> int:
    return _run(args, "POST", "/rollback", None)


def _run(args: argparse.Namespace, method: str, path: str, body: Any) -> int:
    address = serve_client.resolve_address(args.address)
    try:
        headers = {"Accept": "application/json"}
        token = _token(args.token_file)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = serve_client.send(
            method, address, path, headers=headers, body=body, timeout_s=REQUEST_TIMEOUT_S
        )
        answer = _answer(response, address)
        if answer.get("status") == "preparing":
            answer = _await(address, answer.get("commit"), args.wait)
    except (ClientError, OSError, ValueError) as exc:
        return serve_client.fail(str(exc))
    return _report(answer)


def _token(path: str | None) -> str | None:
    if path:
        return Path(path).read_text(encoding="utf-8").strip() or None
    return os.environ.get(TOKEN_ENV) or None


def _answer(response: Any, address: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ClientError(
            f"the reconciler at {address} answered {response.status_code} without JSON; "
            "is that address the reconciler's API?"
        )
    if "status" not in body:  # the Error shape: refused before any pin logic (401, 403...)
        raise ClientError(f"the reconciler at {address} answered {response.status_code}: "
                          f"{body.get('error', '')}")  # fmt: skip
    return body


def _await(address: str, commit: str | None, wait_s: float) -> dict[str, Any]:
    """Poll GET /pin until the request is judged (or `wait_s` is over)."""
    print(f"commit {(commit or '')[:12]} is being prepared; waiting...", file=sys.stderr)
    deadline, pause = time.monotonic() + wait_s, threading.Event()
    while time.monotonic() < deadline:
        pause.wait(1.0)
        body = serve_client.json_body(serve_client.get(address, "/pin"), address)
        last = body.get("last_request") if isinstance(body, dict) else None
        if isinstance(last, dict) and last.get("status") != "preparing":
            return last
    raise ClientError(f"still preparing after {wait_s:g} s; `reconciler status` shows its progress")


def _report(answer: dict[str, Any]) -> int:
    message = str(answer.get("message", ""))
    if answer.get("status") in _DONE_OK:
        print(message)
        return int(Exit.OK)
    lines = [f"error: {message}", *(f"  {e}" for e in answer.get("errors") or ())]
    print("\n".join(lines), file=sys.stderr)
    return int(Exit.INVALID)
