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
from reconciler.ports import Engine
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
    """A working tree plus a reconciler over the real engine, driven pass by pass. The engine is
    the host's Docker by default; `make_engine` gives another (the swarm lab's), which then also
    prepares each version's image (a swarm's nodes pull it) and is where `url` reaches the
    ingress (`ingress_host`)."""

    def __init__(
        self,
        root: Path,
        instance: str,
        config: str = "serve_config.yaml",
        *,
        engine: Engine | None = None,
        load: Callable[[Path, str], ServeConfig] = spec.load_config,
        make_engine: Callable[[], Engine] | None = None,
        ingress_host: str = "127.0.0.1",
    ) -> None:
        self.root = root
        self.instance = instance
        self._make_engine = make_engine or (
            lambda: DockerEngine(instance=instance, default_image=BASE_IMAGE)
        )
        self._prepares = make_engine is not None
        self.engine = engine or self._make_engine()
        self.config = config
        self.load = load
        self.ingress_host = ingress_host
        self.reconciler = self._new_reconciler()

    def _new_reconciler(self) -> Reconciler:
        def prepare(config: ServeConfig, progress: Callable[[str], None]) -> ServeConfig:
            return self.engine.prepare(config, progress)

        target = WorkTreeTarget(
            root=self.root,
            config_path=self.config,
            load=self.load,
            **({"prepare": prepare} if self._prepares else {}),
        )
        return Reconciler(
            target=target, engine=self.engine, redact=spec.redacted_document, interval_s=1.0
        )

    def restart(self) -> None:
        """A new engine object and reconciler: what a restarted process starts with."""
        self.engine.close()
        self.engine = self._make_engine()
        self.reconciler = self._new_reconciler()

    def url(self, port: int, path: str = "/") -> str:
        """Where the ingress answers: this host (Docker), a node of the swarm."""
        return f"http://{self.ingress_host}:{port}{path}"

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
        token = getattr(self.engine, "token", "")  # the swarm's replicas answer only with it
        headers = {"X-Serve-Token": token} if token else {}
        response = requests.post(
            url, json={"args": list(args), "kwargs": {}}, headers=headers, timeout=10
        )
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


# Real-engine tests whose behaviour is the same on both: run on each (`indirect` to harness_for).
# The swarm's long ones are `slow`: its default run stays a couple of minutes.
ENGINES = ["docker", pytest.param("swarm", marks=pytest.mark.swarm)]
ENGINES_SLOW_ON_SWARM = [
    "docker",
    pytest.param("swarm", marks=[pytest.mark.swarm, pytest.mark.slow]),
]


@pytest.fixture
def harness_for(instance_name: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Harnesses on the host's Docker, or (parametrized `engine`) on the session's swarm lab."""
    kind = getattr(request, "param", "docker")
    made: list[Harness] = []

    def make(root: Path, config: str = "serve_config.yaml") -> Harness:
        if kind == "swarm":
            lab = request.getfixturevalue("swarm_lab")
            h = swarm_harness(lab, root, instance_name, config, request.getfixturevalue("tmp_path"))
        else:
            h = Harness(root, instance_name, config)
        made.append(h)
        return h

    yield make
    for h in made:
        h.engine.remove_all()
        h.engine.close()


def swarm_harness(lab: Any, root: Path, instance: str, config: str, state: Path) -> Harness:
    """A harness whose engine is the lab's swarm (through its manager), images pushed to the
    lab's registry, the ingress reached at the manager's address."""
    import docker

    from reconciler.runtime.swarm_engine import SwarmEngine

    def make() -> Engine:
        return SwarmEngine(
            instance=instance,
            default_image=BASE_IMAGE,
            token_file=state / "swarm-token",
            registry=lab.registry,
            docker_client=docker.DockerClient(base_url=lab.docker_host),
            cache_dir=state / "cache",
        )

    return Harness(root, instance, config, make_engine=make, ingress_host=lab.node(1).ip)
