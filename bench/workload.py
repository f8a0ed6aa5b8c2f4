"""The application every section deploys, and the same containers for the baselines.

One deployment (`Bench`), a tiny stdlib-only class: `reconfigure()` keeps the user_config and
`__call__`/`info()` say which config and code version a replica runs. The baselines run the very
same replica runtime, command, env and user; only the way the code gets in differs
(`converge` starts them from the very image the reconciler built for the deployment; the other
sections bind-mount the prepared bundle read-only).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler import spec
from reconciler.model import DeploymentSpec
from reconciler.runtime import containers
from reconciler.runtime.bundle import build_bundle

IMAGE = os.environ.get("BENCH_IMAGE", "serve-reconciler/python:bookworm")
APP, DEPLOYMENT = "default", "Bench"

APP_CODE = """\
from ray import serve

VERSION = "v1"


@serve.deployment
class Bench:
    def __init__(self):
        self.config = {}

    def reconfigure(self, config):
        self.config = config

    def info(self):
        return {"config": self.config, "version": VERSION}

    def __call__(self, request):
        return {"greeting": self.config.get("greeting"), "version": VERSION}


app = Bench.bind()
"""

CONFIG = """\
import_path: bench_app:app
host: 127.0.0.1
port: {port}
deployments:
  - name: Bench
    num_replicas: {replicas}
    max_ongoing_requests: 100
    user_config:
      greeting: {greeting}
    health_check_period_s: {health_period}
    health_check_timeout_s: 5
    graceful_shutdown_wait_loop_s: 0.2
    graceful_shutdown_timeout_s: 3
    ray_actor_options:
      num_cpus: 0.02  # logical: 100 replicas reserve 2 CPUs, well inside a 2-core host's room
"""


@dataclass(frozen=True)
class Workload:
    replicas: int
    port: int
    greeting: str = "hello"
    version: str = "v1"
    health_period: float = 10.0

    def config_text(self) -> str:
        return CONFIG.format(
            port=self.port,
            replicas=self.replicas,
            greeting=self.greeting,
            health_period=self.health_period,
        )

    def code_text(self) -> str:
        return APP_CODE.replace('VERSION = "v1"', f'VERSION = "{self.version}"')

    def write(self, root: Path) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        (root / "bench_app.py").write_text(self.code_text())
        (root / "serve_config.yaml").write_text(self.config_text())
        return root


def deployment_spec(root: Path) -> DeploymentSpec:
    config = spec.load_config(root, "serve_config.yaml")
    return next(iter(config.deployments()))


def prepare_bind_dir(root: Path, dest: Path) -> Path:
    """Unpack the reconciler's own bundle (runtime + code) into `dest` for the baselines."""
    data = build_bundle(deployment_spec(root).code)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    for path in (dest, *dest.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


@dataclass(frozen=True)
class ContainerRecipe:
    """What `docker run` / compose need to start a container equal to a reconciler replica."""

    image: str
    command: list[str]
    user: str
    env: Mapping[str, str]
    binds: Mapping[str, str]  # host dir -> container dir (read-only)
    nano_cpus: int | None


def recipe(root: Path, bind_dir: Path | None, image: str = IMAGE) -> ContainerRecipe:
    """The baselines' container: `image` with the bundle bind-mounted from `bind_dir`, or an
    image that holds the code already (the one the reconciler built) when `bind_dir` is None."""
    dep = deployment_spec(root)
    env = containers.replica_env(dep, 0, "http://127.0.0.1:1")  # no router: one deployment
    env.pop("SERVE_REPLICA")  # per container; the runtime only uses it in log lines
    limits = containers.resource_limits(dep)
    binds = (
        {str(bind_dir / "opt" / "serve"): "/opt/serve", str(bind_dir / "app"): "/app"}
        if bind_dir is not None
        else {}
    )
    return ContainerRecipe(
        image=image,
        command=list(containers.REPLICA_COMMAND),
        user=containers.USER,
        env=env,
        binds=binds,
        nano_cpus=limits.get("nano_cpus"),
    )
