"""Describe mode (`python3 -m serve_replica.describe`): the application built as a replica
builds it, printed as one JSON line, or exit 1 with the user's error as the last stderr line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from reconciler.runtime.bundle import RUNTIME_DIR

SOURCE = """
import ray
from ray import serve

ray.init()
print("printed at import")  # must not reach stdout


@serve.deployment(num_replicas=2, user_config={"w": 1}, autoscaling_config=None)
class Model:
    def __init__(self, w=0):
        self.w = w

    def reconfigure(self, config):
        pass

    def score(self, x):
        return x

    def _hidden(self):
        pass


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=float("inf"))
class Ensemble:
    def __init__(self, a, b):
        pass

    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id):
        return model_id

    async def __call__(self, request):
        return "x"

    def check_health(self):
        pass


@serve.deployment
def hello(request):
    return "hi"


app = Ensemble.bind(Model.bind(1), Model.options(name="Model", num_replicas=1).bind(2))


def builder(args):
    return Ensemble.bind(Model.bind(args["w"]), hello.bind())


serve.run(app)
"""


def _describe(
    tmp_path: Path, import_path: str, args: str = "{}"
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "graph.py").write_text(SOURCE)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(RUNTIME_DIR),
        "SERVE_IMPORT_PATH": import_path,
        "SERVE_ARGS": args,
    }
    return subprocess.run(
        [sys.executable, "-m", "serve_replica.describe"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_describe_prints_the_graph_in_serves_naming(tmp_path: Path) -> None:
    done = _describe(tmp_path, "graph:app")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1  # one line, the import's print went to stderr
    assert "printed at import" in done.stderr
    out = json.loads(done.stdout)
    assert out["ingress"] == "Ensemble"
    names = [d["name"] for d in out["deployments"]]
    assert names == ["Model", "Model_1", "Ensemble"]  # post-order, the second bind renamed
    model, model_1, ensemble = out["deployments"]
    assert model == {
        "name": "Model",
        "class_name": "Model",
        "is_function": False,
        "options": {"num_replicas": 2, "user_config": {"w": 1}, "autoscaling_config": None},
        "methods": ["reconfigure", "score"],
        "has_reconfigure": True,
        "has_check_health": False,
        "asgi_ingress": False,
        "multiplexed": False,
    }
    assert model_1["options"]["num_replicas"] == 1
    assert ensemble["multiplexed"] and ensemble["has_check_health"]
    assert ensemble["methods"] == ["__call__", "check_health", "get_model"]
    assert ensemble["options"]["max_ongoing_requests"] == {"__unserializable__": "inf"}


def test_describe_calls_builders_with_args(tmp_path: Path) -> None:
    done = _describe(tmp_path, "graph:builder", '{"w": 3}')
    assert done.returncode == 0, done.stderr
    deployments = json.loads(done.stdout)["deployments"]
    assert [(d["name"], d["is_function"]) for d in deployments] == [
        ("Model", False),
        ("hello", True),
        ("Ensemble", False),
    ]


def test_describe_failure_ends_with_the_user_error(tmp_path: Path) -> None:
    done = _describe(tmp_path, "graph:missing")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        "AttributeError: module 'graph' has no attribute 'missing'"
    )
    done = _describe(tmp_path, "graph:builder", "{}")
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == "KeyError: 'w'"
