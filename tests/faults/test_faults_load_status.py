"""Load (issue 9): with N replicas running, the daemon answers GET /status at a fixed 500
requests per second while a rolling update replaces the replicas: no error, p99 under 50 ms
(latency counted from each request's intended send time). The short form (20 replicas, 10 s)
runs by default; the full one (100 replicas, 60 s) is marked slow.

The short form holds the median under 50 ms and prints the p99: on a shared 2-core machine the
tail measures the neighbours (with other suites running, the client itself was sent late by up
to 0.4 s), so only the full run, meant for a quiet machine, asserts the p99."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.model import ReplicaState
from reconciler.runtime.docker_engine import DockerEngine
from tests.conftest import BASE_IMAGE
from tests.e2e.conftest import GREETER, GREETER_CONFIG
from tests.faults.replica_faults_support import hold_rate
from tests.support import Daemon, GitRemote, free_port, wait_for

pytestmark = pytest.mark.docker

RATE = 500.0
LIMIT_S = 0.050


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    made: list[Daemon] = []
    yield made
    for d in made:
        d.kill()


def _remote(tmp: Path, replicas: int) -> GitRemote:
    tree = tmp / "tree"
    tree.mkdir()
    (tree / "greeter.py").write_text(GREETER)
    config = (
        GREETER_CONFIG.format(port=free_port())
        .replace("num_replicas: 2", f"num_replicas: {replicas}")
        .replace("num_cpus: 0.2", "num_cpus: 0.05")
        .replace("health_check_period_s: 1", "health_check_period_s: 10")
    )
    (tree / "serve_config.yaml").write_text(config)
    return GitRemote.create(tmp / "git", files_from=tree)


def _run(
    tmp: Path, instance: str, daemons: list[Daemon], replicas: int, seconds: float, pct: float
) -> None:
    """`pct`: the percentile held under 50 ms (the full run holds the p99 the issue asks for)."""
    remote = _remote(tmp, replicas)
    port = free_port()
    args = ["--repo", remote.url, "--branch", "main", "--config", "serve_config.yaml"]
    args += ["--poll-interval", "1", "--state-dir", str(tmp / "state"), "--instance", instance]
    args += ["--default-image", BASE_IMAGE, "--listen", f"127.0.0.1:{port}"]
    d = Daemon(args, port, {}, tmp / "daemon.log")
    daemons.append(d.start())
    engine = DockerEngine(instance=instance, default_image=BASE_IMAGE)

    def all_running() -> bool:
        return (
            d.app_status() == "RUNNING"
            and sum(r.state is ReplicaState.RUNNING for r in engine.observe()) == replicas
        )

    wait_for(all_running, timeout=60 + 3 * replicas, interval=1, what=f"{replicas} replicas")
    first = {r.container_id for r in engine.observe()}
    remote.edit("greeter.py", 'VERSION = "v1"', 'VERSION = "v2"')
    remote.commit_all("v2: a rolling update under load")
    wait_for(
        lambda: d.status()["deployment_statuses"][0]["status"] == "UPDATING",
        timeout=30,
        what="the rollout to start",
    )
    result = hold_rate(d.url + "/status", rate=RATE, seconds=seconds, marker=b"UPDATING")
    replaced = first - {r.container_id for r in engine.observe()}
    p50, p99 = result.percentile(50), result.percentile(99)
    print(
        f"load: {replicas} replicas, {result.sent} GET /status in {seconds:.0f}s at {RATE:.0f}/s, "
        f"errors {len(result.errors)}, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {max(result.latencies) * 1000:.1f} ms, client late at most "
        f"{result.behind_max * 1000:.1f} ms, {result.marked} answers during the rollout, "
        f"{len(replaced)} replicas replaced meanwhile"
    )
    assert result.sent == int(RATE * seconds)
    assert not result.errors, result.errors[:5]
    assert result.percentile(pct) < LIMIT_S, (pct, result.percentile(pct))
    assert result.marked > 0 and replaced  # a rollout really ran while the load did


def test_status_holds_500_rps_during_a_rollout_short(
    tmp_path: Path, instance_name: str, daemons: list[Daemon]
) -> None:
    _run(tmp_path, instance_name, daemons, replicas=20, seconds=10, pct=50)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_status_holds_500_rps_during_a_rollout_100_replicas(
    tmp_path: Path, instance_name: str, daemons: list[Daemon]
) -> None:
    _run(tmp_path, instance_name, daemons, replicas=100, seconds=60, pct=99)
