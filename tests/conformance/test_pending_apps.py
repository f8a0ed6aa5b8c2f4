"""Conformance apps that need more than reading the code: two binds of one class (Serve names
them Model and Model_1) and application builders with args (built in a sandbox container)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conformance_support import App, deploy

from tests.conftest import remove_owned

pytestmark = pytest.mark.docker


def _serve(tmp_path: Path, docker_client: Any, apps: list[App], files: list[str]) -> Any:
    harness, instance, base = deploy(tmp_path / "repo", apps, files)
    return harness, instance, base


def test_two_binds_of_one_class_are_model_and_model_1(tmp_path: Path, docker_client: Any) -> None:
    import requests

    harness, instance, base = _serve(
        tmp_path, docker_client, [App("two_binds", "two_binds:app")], ["two_binds.py"]
    )
    try:
        harness.converge(timeout=120)
        assert {r.deployment for r in harness.replicas()} == {"Ensemble", "Model", "Model_1"}
        r = requests.get(f"{base}/two_binds?x=5", timeout=30)
        assert r.json() == {"scores": [10, 15]}
    finally:
        harness.engine.remove_all()
        remove_owned(docker_client, instance)


def test_builders_with_args(tmp_path: Path, docker_client: Any) -> None:
    import requests

    apps = [
        App("builder", "builders:build_app", args="{message: hi}"),
        App("typed_builder", "builders:build_typed_app", args="{message: yo}"),
    ]
    harness, instance, base = _serve(tmp_path, docker_client, apps, ["builders.py"])
    try:
        harness.converge(timeout=120)
        assert requests.get(f"{base}/builder", timeout=30).text == "hi"
        assert requests.get(f"{base}/typed_builder", timeout=30).text == "yo yo"
    finally:
        harness.engine.remove_all()
        remove_owned(docker_client, instance)
