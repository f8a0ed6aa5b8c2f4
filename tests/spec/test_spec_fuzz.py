"""Property tests: whatever bytes or document the loader is given, only ConfigError escapes,
no issue is an internal error, and nothing hangs."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ConfigError
from reconciler.spec import load_bytes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples-repo"
FRUIT = yaml.safe_load((EXAMPLES / "serve_config.yaml").read_text())
MULTI = yaml.safe_load((EXAMPLES / "multi_app_config.yaml").read_text())
KEYS = [
    "import_path",
    "runtime_env",
    "host",
    "port",
    "deployments",
    "applications",
    "name",
    "num_replicas",
    "route_prefix",
    "user_config",
    "autoscaling_config",
    "working_dir",
    "env_vars",
    "ray_actor_options",
    "num_cpus",
    "min_replicas",
    "max_replicas",
    "initial_replicas",
    "http_options",
    "py_modules",
    "image_uri",
    "from_env",
    "secret",
    "value",
    "max_ongoing_requests",
    "max_concurrent_queries",
    "x-note",
    "args",
]
DEADLINE_S = 2.0  # of CPU time (a hang spins); wall time only loosely, for a busy machine
DEADLINE_WALL_S = 30.0

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "auto",
            "/",
            "/fruit",
            "fruit:deployment_graph",
            "MangoStand",
            "..",
            "/etc",
            "https://x/y.zip",
            ".",
        ]
    ),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=30,
)


def _load(data: bytes) -> None:
    start, start_cpu = time.monotonic(), time.thread_time()
    try:
        load_bytes(data, root=EXAMPLES, config_path="serve_config.yaml", environ={})
    except ConfigError as exc:
        assert exc.issues
        assert not [i for i in exc.issues if "internal error" in i.message], exc.issues
    assert time.thread_time() - start_cpu < DEADLINE_S
    assert time.monotonic() - start < DEADLINE_WALL_S


def _dump(document: Any) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True).encode("utf-8")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _load(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents(document: Any) -> None:
    _load(_dump(document))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    document = copy.deepcopy(draw(st.sampled_from([FRUIT, MULTI])))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(documents)
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(documents)
    return document


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_fruit_configs(document: Any) -> None:
    _load(_dump(document))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_text(data: st.DataObject) -> None:
    text = bytearray((EXAMPLES / "serve_config.yaml").read_bytes())
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(text) - 1))
        text[at : at + 1] = data.draw(st.binary(min_size=0, max_size=3))
    _load(bytes(text))
