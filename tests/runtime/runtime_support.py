"""Helpers for the runtime tests: deployment specs, polling with a deadline, HTTP calls, and a
replica process run locally (no Docker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reconciler.model import CodeTree, DeploymentSpec
from reconciler.runtime.bundle import RUNTIME_DIR
from tests.support import free_port, wait_for

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None], timeout: float = 30.0, what: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    return wait_for(condition, timeout=timeout, interval=0.05, what=what)  # type: ignore[return-value]


def http(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, bytes, str]:
    """(status, body, content type); HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def call_json(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    status, raw, _ = http(url, data)
    return status, json.loads(raw)


def make_spec(code: CodeTree, name: str = "Stand", **overrides: Any) -> DeploymentSpec:
    fields: dict[str, Any] = {
        "app": "default",
        "name": name,
        "import_path": "shop:graph",
        "num_replicas": 1,
        "route_prefix": None,
        "is_ingress": False,
        "user_config": None,
        "code": code,
        "health_check_period_s": 1.0,
        "health_check_timeout_s": 5.0,
        "graceful_shutdown_wait_loop_s": 0.2,
        "graceful_shutdown_timeout_s": 10.0,
        **overrides,
    }
    return DeploymentSpec(**fields)


class LocalReplica:
    """`python -m serve_replica` as a local process, the way the container runs it."""

    def __init__(self, code_dir: Path, state_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(RUNTIME_DIR),
            "PYTHONDONTWRITEBYTECODE": "1",
            "SERVE_HTTP_PORT": str(self.port),
            "SERVE_STATE_DIR": str(state_dir),
            "SERVE_GRACEFUL_SHUTDOWN_WAIT_LOOP_S": "0.1",
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serve_replica"],
            cwd=code_dir,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def state(self) -> dict[str, Any] | None:
        try:
            status, data = call_json(self.url + "/-/state")
        except OSError:
            return None
        return data if status == 200 else None

    def wait_ready(self) -> None:
        wait_until(lambda: (self.state() or {}).get("initialized"), 20, "replica ready")

    def finish(self, timeout: float = 20) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


BASE_IMAGE = os.environ.get("RECONCILER_TEST_IMAGE", "serve-reconciler/python:bookworm")


def observe_until(engine: Any, predicate: Callable[[list[Any]], bool], timeout: float = 60) -> Any:
    """Observe until `predicate(replicas)` holds; returns the replicas of that pass."""

    def check() -> list[Any] | None:
        replicas = engine.observe()
        return replicas if predicate(replicas) else None

    return wait_until(check, timeout, "observed state")


def try_http(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    """(status, body), or (-1, b"") while nothing answers yet: for polling."""
    try:
        return http(url, body, timeout=5)[:2]
    except OSError:
        return -1, b""
