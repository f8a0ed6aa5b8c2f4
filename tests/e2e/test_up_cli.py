"""`reconciler up` and `reconciler down` as a user runs them."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.runtime import labels
from tests.conftest import BASE_IMAGE
from tests.support import wait_for

pytestmark = pytest.mark.docker


def _owned(client: Any, instance: str) -> tuple[list[Any], list[Any]]:
    selector = {"label": f"{labels.OWNER}={instance}"}
    return client.containers.list(all=True, filters=selector), client.networks.list(
        filters=selector
    )


def test_up_follows_then_ctrl_c_leaves_nothing_behind(
    greeter_tree: Path, instance_name: str, docker_client: Any, tmp_path: Path
) -> None:
    out = (tmp_path / "up.log").open("w+b")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "up",
            str(greeter_tree / "serve_config.yaml"),
            "--instance",
            instance_name,
            "--default-image",
            BASE_IMAGE,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: b"default: RUNNING" in (tmp_path / "up.log").read_bytes(),
            timeout=90,
            what="`up` to print RUNNING",
        )
        containers, _ = _owned(docker_client, instance_name)
        assert len([c for c in containers if c.labels.get(labels.ROLE) == "replica"]) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    containers, networks = _owned(docker_client, instance_name)
    assert containers == [] and networks == []


def test_up_detach_then_down(greeter_tree: Path, instance_name: str, docker_client: Any) -> None:
    common = ["--instance", instance_name, "--default-image", BASE_IMAGE]
    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "up",
            str(greeter_tree / "serve_config.yaml"),
            "--detach",
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    containers, _ = _owned(docker_client, instance_name)
    assert sum(c.status == "running" for c in containers) >= 2
    down = subprocess.run(
        [sys.executable, "-m", "reconciler", "down", "--instance", instance_name],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 0, down.stderr
    assert _owned(docker_client, instance_name) == ([], [])


def test_up_refuses_a_missing_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "up", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no such file" in result.stderr
