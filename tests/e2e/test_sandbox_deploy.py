"""End to end: an application whose options only running its code can tell (a builder called
with the config's args, options from a function) is built in the sandbox, then deployed on the
real engine with those options; an unchanged working tree starts no second sandbox."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler import spec
from reconciler.model import ServeConfig
from reconciler.reconcile import Reconciler, WorkTreeTarget
from reconciler.runtime.sandbox import SandboxGraphBuilder
from tests.conftest import BASE_IMAGE
from tests.e2e.conftest import Harness
from tests.spec.sandbox.support import leftovers, runtime_with_describe
from tests.support import free_port

pytestmark = pytest.mark.docker

SHOP = """
from ray import serve


def stand_options():
    return {"num_replicas": 2, "user_config": {"price": 3}}


@serve.deployment(**stand_options())
class Stand:
    def __init__(self):
        self.price = 0

    def reconfigure(self, config):
        self.price = config["price"]

    def check_price(self, amount):
        return self.price * amount


@serve.deployment
class Shop:
    def __init__(self, stand, greeting):
        self.stand = stand
        self.greeting = greeting

    def hello(self):
        return self.greeting

    def __call__(self, request):
        return self.greeting


def build(args):
    return Shop.options(num_replicas=int(args["shops"])).bind(Stand.bind(), args["greeting"])
"""

CONFIG = """
import_path: shop:build
host: 127.0.0.1
port: {port}
args:
  greeting: hej
  shops: 1
deployments:
  - name: Stand
    health_check_period_s: 1
    ray_actor_options: {{num_cpus: 0.1}}
  - name: Shop
    health_check_period_s: 1
    ray_actor_options: {{num_cpus: 0.1}}
"""


class SandboxHarness(Harness):
    """The e2e harness, loading the config the way `reconciler up` does: with a sandbox."""

    def __init__(self, root: Path, instance: str, sandbox: SandboxGraphBuilder) -> None:
        self.sandbox = sandbox
        super().__init__(root, instance)

    def _load(self, tree: Path, config_path: str) -> ServeConfig:
        return spec.load_config(tree, config_path, graph_builder=self.sandbox)

    def _new_reconciler(self) -> Reconciler:
        target = WorkTreeTarget(root=self.root, config_path=self.config, load=self._load)
        return Reconciler(
            target=target, engine=self.engine, redact=spec.redacted_document, interval_s=1.0
        )


def test_builder_with_args_deploys_with_the_options_its_code_makes(
    tmp_path: Path, instance_name: str, docker_client: Any
) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "shop.py").write_text(textwrap.dedent(SHOP))
    (root / "serve_config.yaml").write_text(CONFIG.format(port=free_port()))
    sandbox = SandboxGraphBuilder(
        instance=instance_name,
        default_image=BASE_IMAGE,
        runtime_dir=runtime_with_describe(tmp_path),
    )
    h = SandboxHarness(root, instance_name, sandbox)
    try:
        h.converge(timeout=120)
        assert len(h.running("Stand")) == 2 and len(h.running("Shop")) == 1
        assert h.call(h.running("Stand")[0], "check_price", 2) == 6  # user_config from code
        assert h.call(h.running("Shop")[0], "hello") == "hej"  # args reached the builder
        runs = sandbox.runs
        for _ in range(3):
            h.reconciler.run_pass()
        assert sandbox.runs == runs == 1, "an unchanged tree must not start the sandbox again"
        h.edit("serve_config.yaml", "shops: 1", "shops: 2")
        h.converge(timeout=120)
        assert len(h.running("Shop")) == 2 and sandbox.runs == 2
    finally:
        h.engine.remove_all()
    assert leftovers(docker_client, instance_name) == []
