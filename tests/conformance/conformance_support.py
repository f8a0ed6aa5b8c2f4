"""Helpers of the conformance suite: the applications of a multi-application config, writing
it with the apps' files into a repository root, and asking the deployed apps over HTTP."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from reconciler.app.engine import make_engine, make_loader
from reconciler.settings import EngineSettings, HostLimits
from tests.conftest import BASE_IMAGE, new_instance_name
from tests.e2e.conftest import Harness
from tests.support import free_port

APPS = Path(__file__).resolve().parent / "apps"


@dataclass(frozen=True)
class App:
    """One application of the config: `name` is also its route prefix (`/name`)."""

    name: str
    import_path: str
    deployments: str = ""  # YAML of the deployments list, indented for the config
    prefix: str | None = None
    args: str = ""  # YAML of args
    image: str = ""

    def yaml(self) -> str:
        prefix = self.prefix if self.prefix is not None else f"/{self.name}"
        lines = [
            f"  - name: {self.name}",
            f"    route_prefix: {prefix}",
            f"    import_path: {self.import_path}",
        ]
        if self.image:
            lines.append(f"    runtime_env: {{image_uri: {self.image}}}")
        if self.args:
            lines.append(f"    args: {self.args}")
        if self.deployments:
            lines.append("    deployments:")
            lines += [f"      {line}" for line in self.deployments.strip().splitlines()]
        return "\n".join(lines)


def config_text(apps: list[App], port: int) -> str:
    head = f"http_options:\n  host: 127.0.0.1\n  port: {port}\napplications:\n"
    return head + "\n".join(app.yaml() for app in apps) + "\n"


@dataclass
class Deployed:
    base: str
    harness: Harness

    def url(self, app: str, path: str = "/") -> str:
        return f"{self.base}/{app}{path}"

    def get(self, app: str, path: str = "/", **kwargs: Any) -> requests.Response:
        return requests.get(self.url(app, path), timeout=30, **kwargs)

    def post(self, app: str, path: str = "/", **kwargs: Any) -> requests.Response:
        return requests.post(self.url(app, path), timeout=30, **kwargs)

    def logs(self, app: str, deployment: str) -> str:
        import docker

        client = docker.from_env()
        try:
            out = []
            for replica in self.harness.replicas(deployment):
                if replica.app == app:
                    out.append(client.api.logs(replica.container_id).decode("utf-8", "replace"))
            return "\n".join(out)
        finally:
            client.close()


def deploy(root: Path, apps: list[App], files: list[str]) -> tuple[Harness, str, str]:
    """Write the apps' files and config under root; a reconciler for it (not yet converged)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy(APPS / name, root / name)
    port = free_port()
    (root / "serve_config.yaml").write_text(config_text(apps, port))
    instance = new_instance_name()
    # ~40 replicas at Serve's default num_cpus 1 on a 2-core machine: admission would leave
    # most pending, as Ray would. The suite tests the runtime, so its host holds them all.
    settings = EngineSettings(
        instance=instance, default_image=BASE_IMAGE, limits=HostLimits(cpu_overcommit=100.0)
    )
    # Loaded as `reconciler up` loads it: builders and options from code are built in a sandbox.
    engine = make_engine(settings)
    harness = Harness(root, instance, engine=engine, load=make_loader(settings, engine=engine))
    return harness, instance, f"http://127.0.0.1:{port}"
