"""bench/run cannot rot: its cheapest section at the smallest size, through the real entry point,
writes the JSON the README and RESULTS.md describe."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.docker


def test_idle_pass_section_writes_the_expected_json(tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [str(ROOT / "bench" / "run"), "--smallest", "--only", "idle-pass", "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["mode"] == "smallest"
    assert set(report["machine"]) >= {"cores", "memory_gib", "docker", "kernel"}
    (size, figures), *_ = report["sections"]["idle-pass"].items()
    assert int(size) > 0
    assert set(figures) == {"wall_ms", "cpu_ms", "docker_api_calls"}
    assert figures["docker_api_calls"] >= 1  # at least the one container list
    assert figures["wall_ms"] > 0 and figures["cpu_ms"] >= 0
    assert "idle pass" in done.stdout  # the table was printed
    assert report["owners"]
    for owner in report["owners"]:
        label = {"label": f"io.serve-reconciler.owner={owner}"}
        assert not docker_client.containers.list(all=True, filters=label)
        assert not docker_client.networks.list(filters=label)
