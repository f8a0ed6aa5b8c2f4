"""Fixtures for end-to-end tests: a config working tree, a reconciler wired as `up` wires it."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler import spec
from reconciler.model import ApplicationStatus, ObservedReplica, ReplicaState, ServeConfig
from reconciler.reconcile import Reconciler, WorkTreeTarget
from reconciler.runtime.docker_engine import DockerEngine
from tests.conftest import BASE_IMAGE
from tests.support import EXAMPLES, free_port, wait_for

GREETER = """\
import os
from ray import serve

VERSION = "v1"


@serve.deployment(num_replicas=2, user_config={"greeting": "hello"})
class Greeter:
    def __init__(self):
        self.greeting = "?"

    def reconfigure(self, config):
        self.greeting = config["greeting"]

    def greet(self, name):
        return f"{self.greeting}, {name} ({VERSION})"

    def __call__(self, request):
        return {"greeting": self.greeting, "pid": os.getpid(), "version": VERSION}


app = Greeter.bind()
"""

GREETER_CONFIG = """\
import_path: greeter:app
host: 127.0.0.1
port: {port}
deployments:
  - name: Greeter
    num_replicas: 2
    user_config:
      greeting: hello
    health_check_period_s: 1
    health_check_timeout_s: 5
    graceful_shutdown_wait_loop_s: 0.2
    graceful_shutdown_timeout_s: 5
    ray_actor_options:
      num_cpus: 0.2
"""


class Harness:
    """A working tree plus a reconciler over the real engine, driven pass by pass."""

    def __init__(
        self,
        root: Path,
        instance: str,
        config: str = "serve_config.yaml",
        *,
        engine: DockerEngine | None = None,
        load: Callable[[Path, str], ServeConfig] = spec.load_config,
    ) -> None:
        self.root = root
        self.instance = instance
        self.engine = engine or DockerEngine(instance=instance, default_image=BASE_IMAGE)
        self.config = config
        self.load = load
        self.reconciler = self._new_reconciler()

    def _new_reconciler(self) -> Reconciler:
        target = WorkTreeTarget(root=self.root, config_path=self.config, load=self.load)
        return Reconciler(
            target=target, engine=self.engine, redact=spec.redacted_document, interval_s=1.0
        )

    def restart(self) -> None:
        """A new engine object and reconciler: what a restarted process starts with."""
        self.engine = DockerEngine(instance=self.instance, default_image=BASE_IMAGE)
        self.reconciler = self._new_reconciler()

    def converge(self, timeout: float = 90.0) -> None:
        def settled() -> bool:
            self.reconciler.run_pass()
            snap = self.reconciler.snapshot
            return (
                self.reconciler.last_settled
                and all(a.status == ApplicationStatus.RUNNING for a in snap.applications)
                and bool(snap.applications)
            )

        wait_for(settled, timeout=timeout, interval=0.3, what=f"convergence ({self.describe()})")

    def describe(self) -> str:
        snap = self.reconciler.snapshot
        return "; ".join(
            f"{a.name} {a.status}: "
            + ", ".join(f"{d.name} {d.status} {d.message}" for d in a.deployments)
            + (f" [{a.message}]" if a.message else "")
            for a in snap.applications
        ) + (f" engine_error={snap.loop.engine_error}" if snap.loop.engine_error else "")

    def replicas(self, deployment: str | None = None) -> list[ObservedReplica]:
        return sorted(
            (r for r in self.engine.observe() if deployment is None or r.deployment == deployment),
            key=lambda r: (r.deployment, r.index),
        )

    def running(self, deployment: str) -> list[ObservedReplica]:
        return [r for r in self.replicas(deployment) if r.state == ReplicaState.RUNNING]

    def call(self, replica: ObservedReplica, method: str, *args: Any) -> Any:
        assert replica.control_url
        url = f"{replica.control_url}/-/call/{replica.app}/{replica.deployment}/{method}"
        response = requests.post(url, json={"args": list(args), "kwargs": {}}, timeout=10)
        response.raise_for_status()
        return response.json()["result"]

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.root / relpath
        text = path.read_text()
        assert old in text, f"{old!r} not in {relpath}"
        path.write_text(text.replace(old, new, 1))


@pytest.fixture
def greeter_tree(tmp_path: Path) -> Path:
    root = tmp_path / "greeter"
    root.mkdir()
    (root / "greeter.py").write_text(GREETER)
    (root / "serve_config.yaml").write_text(GREETER_CONFIG.format(port=free_port()))
    return root


@pytest.fixture
def fruit_tree(tmp_path: Path) -> Path:
    root = tmp_path / "fruit"
    shutil.copytree(EXAMPLES, root, ignore=shutil.ignore_patterns(".git"))
    port = free_port()
    for name in ("serve_config.yaml", "multi_app_config.yaml"):
        path = root / name
        if path.exists():
            path.write_text(path.read_text().replace("port: 8000", f"port: {port}"))
    return root


@pytest.fixture
def harness_for(instance_name: str) -> Iterator[Any]:
    made: list[Harness] = []

    def make(root: Path, config: str = "serve_config.yaml") -> Harness:
        h = Harness(root, instance_name, config)
        made.append(h)
        return h

    yield make
    for h in made:
        h.engine.remove_all()
