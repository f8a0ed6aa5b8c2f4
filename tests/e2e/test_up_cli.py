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


def _up_detached(
    tree: Path, instance: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    import time

    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "up",
            str(tree / "serve_config.yaml"),
            "--detach",
            "--timeout",
            "30",
            "--instance",
            instance,
            "--default-image",
            BASE_IMAGE,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, time.monotonic() - started


def test_up_detach_on_an_invalid_config_exits_1_at_once(
    greeter_tree: Path, instance_name: str, docker_client: Any
) -> None:
    config = greeter_tree / "serve_config.yaml"
    config.write_text(config.read_text().replace("num_replicas: 2", "num_replica: 2"))
    result, took = _up_detached(greeter_tree, instance_name)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert took < 20, f"took {took:.1f}s: the timeout was waited out"  # not --timeout 30
    assert "serve_config.yaml:" in out and "num_replica" in out
    assert "the working tree's config" in out.lower() and "commit worktree" not in out.lower()
    containers, _ = _owned(docker_client, instance_name)
    assert [c for c in containers if c.labels.get(labels.ROLE) == "replica"] == []


def test_up_detach_on_a_config_the_host_cannot_hold_exits_1_at_once(
    greeter_tree: Path, instance_name: str, docker_client: Any
) -> None:
    config = greeter_tree / "serve_config.yaml"
    config.write_text(config.read_text().replace("num_replicas: 2", "num_replicas: 100000"))
    result, took = _up_detached(greeter_tree, instance_name, "--max-replicas", "3")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert took < 60, f"took {took:.1f}s"
    assert "cannot start" in out and "--max-replicas" in out
    containers, _ = _owned(docker_client, instance_name)
    replicas = [c for c in containers if c.labels.get(labels.ROLE) == "replica"]
    assert len(replicas) == 3  # the cap, not 100000
