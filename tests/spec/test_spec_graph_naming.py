"""Two binds of one class are two deployments named as Serve names them (post-order, a second
different node of a taken name gets _1, _2...; one node bound twice is one deployment). The
static reading of the code and the replica runtime's graph build must agree, or a replica would
look for a deployment the reconciler never started: both are run here on the same modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from reconciler.runtime.bundle import RUNTIME_DIR
from reconciler.spec.codemodule import scan_module
from reconciler.spec.codescan import CodeReader, serve_names

HEADER = """
from ray import serve

@serve.deployment
class Model:
    def __init__(self, *args, **kwargs):
        pass

@serve.deployment
class Chain:
    def __init__(self, *args, **kwargs):
        pass
"""

GRAPHS = {
    "two binds": "app = Chain.bind(Model.bind(), Model.bind())",
    "one node twice": "m = Model.bind()\napp = Chain.bind(m, m)",
    "taken name first": (
        'app = Chain.bind(Model.options(name="Model_1").bind(), Model.bind(), Model.bind())'
    ),
    "taken name last": (
        'app = Chain.bind(Model.bind(), Model.bind(), Model.options(name="Model_1").bind())'
    ),
    "nested and keywords": (
        "inner = Chain.bind(Model.bind())\n"
        "app = Chain.bind(inner, [Model.bind(), {'k': Model.bind()}], tail=(inner, Model.bind()))"
    ),
    "parent named like a child": (
        'app = Model.bind(Model.bind(), Chain.options(name="Model").bind())'
    ),
}

REPLICA_NAMES = """
import json, sys
from serve_replica.graph import import_target, name_nodes, to_application
app = to_application(import_target(sys.argv[1]), {})
print(json.dumps([name for name, _ in name_nodes(app).values()]))
"""


def _replica_names(root: Path, import_path: str) -> list[str]:
    """The replica runtime's names, in its own process (it runs the module, as replicas do)."""
    env = {**os.environ, "PYTHONPATH": f"{RUNTIME_DIR}:{root}"}
    result = subprocess.run(
        [sys.executable, "-c", REPLICA_NAMES, import_path],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    names: list[str] = json.loads(result.stdout)
    return names


@pytest.mark.parametrize("graph", sorted(GRAPHS), ids=lambda g: g.replace(" ", "_"))
def test_static_names_are_the_replica_runtimes(tmp_path: Path, graph: str) -> None:
    (tmp_path / "graphs.py").write_text(textwrap.dedent(HEADER) + GRAPHS[graph] + "\n")
    reader = CodeReader(tmp_path, ".", [])
    loaded = reader.module("graphs")
    assert loaded is not None
    top = loaded[1].values["app"]
    static = [name for name, _ in serve_names(top)]  # type: ignore[arg-type]
    assert static == _replica_names(tmp_path, "graphs:app")
    app = reader.app("graphs:app")
    assert not isinstance(app, list)
    assert app.ingress == static[-1] and sorted(app.deployments) == sorted(static)


def test_the_expected_names() -> None:
    """The rule itself, spelled out, so that both sides cannot agree on a wrong answer."""
    expected = {
        "two binds": ["Model", "Model_1", "Chain"],
        "one node twice": ["Model", "Chain"],
        "taken name first": ["Model_1", "Model", "Model_2", "Chain"],
        "taken name last": ["Model", "Model_1", "Model_1_1", "Chain"],
        "parent named like a child": ["Model", "Model_1", "Model_2"],
    }
    for graph, names in expected.items():
        tree = textwrap.dedent(HEADER) + GRAPHS[graph] + "\n"
        top = scan_module(tree, "graphs.py").values["app"]
        assert [n for n, _ in serve_names(top)] == names, graph  # type: ignore[arg-type]
