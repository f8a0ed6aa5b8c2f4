"""A replica turning unhealthy is replaced by the daemon at once, not at its next poll: the
health monitor asks the scheduler for a pass (runtime/health.py, `on_unhealthy`). The daemon here
polls once an hour and has settled, so only that request can replace the replica in time."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.model import ReplicaState
from tests.faults.faults_support import Rig
from tests.faults.replica_faults_support import fault_tree
from tests.support import GitRemote, wait_for

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
        return {
            r.container_id
            for r in rig.replicas()
            if r.deployment == "Faulty" and r.state is ReplicaState.RUNNING
        }

    wait_for(lambda: faulty(), timeout=90, interval=0.5, what="the Faulty replica running")
    first = faulty()
    wait_for(
        lambda: bool(faulty()) and not faulty() & first,
        timeout=90,
        interval=0.5,
        what="the unhealthy replica replaced by a new one",
    )
    status = daemon.status()
    assert status["app_status"]["status"] != "NOT_STARTED"
    assert "health check" in daemon.log() or "unhealthy" in daemon.log().lower()
