"""A deployment class with a `@serve.multiplexed` method is marked, so the ingress can route by
model id; the mark reaches the DeploymentSpec and is not part of its version."""

from __future__ import annotations

import textwrap
from dataclasses import replace

from reconciler.spec.codescan import ScannedDeployment, scan_module

SOURCE = """
from ray import serve
from ray.serve import multiplexed as mx
import ray

@serve.deployment
class A:
    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id):
        return model_id

@serve.deployment(num_replicas=2)
class B:
    @mx
    async def load(self, model_id):
        return model_id

@serve.deployment
class C:
    @ray.serve.multiplexed()
    def load(self, model_id):
        return model_id

@serve.deployment
class Plain:
    @staticmethod
    def helper():
        return 1

class Later:
    @serve.multiplexed
    async def load(self, model_id):
        return model_id

later = serve.deployment(Later)
"""


def test_multiplexed_methods_are_found_in_every_decorator_form() -> None:
    values = scan_module(textwrap.dedent(SOURCE), "m.py").values
    found = {k: v.multiplexed for k, v in values.items() if isinstance(v, ScannedDeployment)}
    assert found == {"A": True, "B": True, "C": True, "Plain": False, "later": True}


def test_the_mark_is_not_part_of_the_version() -> None:
    from reconciler.model import DeploymentSpec

    spec = DeploymentSpec("app", "A", "m:app", 1, None, False)
    assert replace(spec, multiplexed=True).version == spec.version
