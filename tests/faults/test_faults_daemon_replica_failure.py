"""A replica that turns unhealthy or dies is replaced by the daemon at once, not at its next
poll: the health monitor (runtime/health.py, `on_unhealthy`) and the engine's exit events
(runtime/exits.py) ask the scheduler for a pass. The daemons here poll once an hour and have
settled, so only those requests can replace a replica in time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.model import ReplicaState
from tests.faults.faults_support import CONFIG, GREETER, Rig
from tests.faults.replica_faults_support import fault_tree
from tests.support import Daemon, GitRemote, free_port, wait_for

pytestmark = pytest.mark.docker


def test_an_unhealthy_replica_is_replaced_without_waiting_for_the_poll(
    rig: Rig, tmp_path: Path
) -> None:
    # Faulty's check_health() passes once, then hangs: unhealthy after 3 timed-out checks.
    remote = GitRemote.create(
        tmp_path / "faulty-git", files_from=fault_tree(tmp_path, "hang_health")
    )
    daemon = rig.start("--poll-interval", "3600", repo=remote.url)

    def faulty() -> set[str]:
        return _running(rig, "Faulty")

    wait_for(lambda: faulty(), timeout=90, interval=0.5, what="the Faulty replica running")
    first = faulty()
    wait_for(
        lambda: bool(faulty()) and not faulty() & first,
        timeout=90,
        interval=0.5,
        what="the unhealthy replica replaced by a new one",
    )
    assert daemon.status()["app_status"]["status"] != "NOT_STARTED"


def _settled(daemon: Daemon) -> None:
    seen: list[int] = []

    def passes_stopped() -> bool:
        seen.append(daemon.status()["passes"])
        return len(seen) >= 4 and len(set(seen[-4:])) == 1

    wait_for(passes_stopped, timeout=60, interval=0.5, what="the daemon settled (no more passes)")


def _running(rig: Rig, deployment: str) -> set[str]:
    return {
        r.container_id
        for r in rig.replicas()
        if r.deployment == deployment and r.state is ReplicaState.RUNNING
    }


def test_a_killed_replica_is_replaced_without_waiting_for_the_poll(
    rig: Rig, tmp_path: Path, docker_client: Any
) -> None:
    # Health checks once a minute: three of them would take three minutes to notice the death.
    tree = tmp_path / "slow-checks"
    tree.mkdir()
    (tree / "greeter.py").write_text(GREETER)
    config = CONFIG.format(port=free_port()).replace(
        "health_check_period_s: 1", "health_check_period_s: 60"
    )
    (tree / "serve_config.yaml").write_text(config)
    remote = GitRemote.create(tmp_path / "slow-git", files_from=tree)
    daemon = rig.start("--poll-interval", "3600", repo=remote.url)
    wait_for(
        lambda: len(_running(rig, "Greeter")) == 2, timeout=90, interval=0.5, what="2 replicas"
    )
    _settled(daemon)  # no pass of its own would come now for an hour
    before = _running(rig, "Greeter")
    victim = sorted(before)[0]
    docker_client.api.kill(victim)  # SIGKILL: no goodbye, as in an OOM kill
    wait_for(
        lambda: len(after := _running(rig, "Greeter")) == 2 and victim not in after,
        timeout=30,
        interval=0.5,
        what="the killed replica replaced",
    )
    assert _running(rig, "Greeter") - before, "no new replica"
    assert sorted(before)[1] in _running(rig, "Greeter")  # the other one left alone
