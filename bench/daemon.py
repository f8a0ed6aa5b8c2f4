"""`reconciler run` under test: a bare git remote holding the workload, the daemon as a
subprocess (tests.support.Daemon), signed webhooks, and what the replicas answer."""

from __future__ import annotations

import http.client
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bench.core import Cleanup, replica_filters, wait_until
from bench.workload import IMAGE, Workload
from reconciler.webhook import signature_for
from tests.support import Daemon, GitRemote, free_port

SECRET = "bench-webhook-secret"


@contextmanager
def running_daemon(
    cleanup: Cleanup,
    tmp: Path,
    workload: Workload,
    *,
    section: str,
    poll_s: float = 1.0,
    webhook: bool = False,
) -> Iterator[tuple[Daemon, GitRemote, str]]:
    """A daemon (and its remote) that has deployed `workload`; its replicas go on exit."""
    tree = workload.write(tmp / "tree")
    remote = GitRemote.create(tmp / "git", files_from=tree)
    owner = cleanup.owner(section)
    port = free_port()
    args = ["--repo", remote.url, "--branch", "main", "--config", "serve_config.yaml",
            "--poll-interval", str(poll_s), "--state-dir", str(tmp / "state"), "--listen",
            f"127.0.0.1:{port}", "--instance", owner, "--default-image", IMAGE,
            "--log-level", "WARNING"]  # fmt: skip
    if webhook:
        secret_file = tmp / "secret"
        secret_file.write_text(SECRET)
        args += ["--webhook-secret-file", str(secret_file)]
    daemon = Daemon(args, port, dict(os.environ), tmp / "daemon.log")
    try:
        daemon.start()
        assert daemon.proc is not None
        cleanup.process(daemon.proc)
        wait_until(
            lambda: all_answer(cleanup, owner, workload.replicas, "greeting", workload.greeting),
            timeout=60 + 2 * workload.replicas, what=f"{workload.replicas} replicas deployed",
        )  # fmt: skip
        yield daemon, remote, owner
    except BaseException:
        _report(daemon)  # the temporary directory and its log go with the exception
        raise
    finally:
        daemon.stop()
        cleanup.remove_owner(owner)


def _report(daemon: Daemon) -> None:
    # Best effort: a failure here must not replace the one being reported.
    try:
        status = json.dumps(daemon.status(), indent=1)
    except Exception as exc:
        status = f"(no answer: {exc})"
    try:
        text = daemon.log()
    except OSError as exc:
        text = f"(unreadable: {exc})"
    print(f"[bench] the daemon's /status:\n{status}", file=sys.stderr)
    print(f"[bench] the daemon's log (tail):\n{text}", file=sys.stderr)


def post_webhook(daemon: Daemon, branch: str = "main") -> None:
    body = json.dumps({"ref": f"refs/heads/{branch}"}).encode()
    response = requests.post(
        daemon.url + "/webhook",
        data=body,
        timeout=10,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": "sha256=" + signature_for(body, SECRET),
        },
    )
    response.raise_for_status()


def _info(port: int) -> dict[str, Any] | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        body = json.dumps({"args": [], "kwargs": {}})
        conn.request(
            "POST", "/-/call/default/Bench/info", body, {"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        data = json.loads(response.read() or b"null")
        return data.get("result") if response.status == 200 and isinstance(data, dict) else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()


def answers(cleanup: Cleanup, owner: str) -> list[dict[str, Any] | None]:
    """What each running replica of `owner` says from `info()` (None: no answer)."""
    entries = cleanup.client.api.containers(filters={"label": replica_filters(owner)})
    ports = [
        int(p["PublicPort"])
        for e in entries
        if "--drain-" not in e["Names"][0]
        for p in e.get("Ports") or []
        if p.get("PrivatePort") == 8000 and p.get("PublicPort")
    ]
    return [_info(port) for port in ports]


def all_answer(cleanup: Cleanup, owner: str, n: int, key: str, value: str) -> bool:
    """Exactly `n` live replicas, each answering with `key` == value (config key or version)."""
    got = answers(cleanup, owner)
    if len(got) != n:
        return False
    for info in got:
        if info is None:
            return False
        actual = info["version"] if key == "version" else info["config"].get(key)
        if actual != value:
            return False
    return True
