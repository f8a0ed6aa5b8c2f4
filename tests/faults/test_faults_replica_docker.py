"""Replica faults against the real engine (issue 9): a crash loop, a hang in `__init__`, a hung
`check_health()`, a replica that ignores SIGTERM. Each sits next to a healthy deployment whose
user_config change is applied while the faulty one fails; each is bounded by its timeouts,
reported in the user's words, and retried with a backoff that grows."""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import ApplicationStatus, DeploymentStatus, ReplicaState
from tests.e2e.conftest import Harness
from tests.faults.replica_faults_support import (
    PassLog,
    deployment,
    drive,
    fault_tree,
    greeting_everywhere,
    running,
)
from tests.support import wait_for

pytestmark = pytest.mark.docker

CRASH_TEXT = "fatal: lost the connection to the fruit database"


def _ids(h: Harness, name: str) -> set[str]:
    return {r.container_id for r in running(h, name)}


def _greeter_up_then_reconfigure(h: Harness, log: PassLog, greeting: str) -> set[str]:
    """Bring the healthy deployment up, then change its user_config while the other fails."""
    drive(h, log, seconds=60, until=lambda: len(running(h, "Greeter")) == 1)
    before = _ids(h, "Greeter")
    assert before, h.describe()
    h.edit("serve_config.yaml", "greeting: hello", f"greeting: {greeting}")
    return before


def _retry_delays(messages: list[str]) -> list[int]:
    return [int(m) for text in messages for m in re.findall(r"Retrying in (\d+)s", text)]


def test_crash_loop_backs_off_with_the_users_error(tmp_path: Path, instance_name: str) -> None:
    h = Harness(fault_tree(tmp_path, "crash"), instance_name)
    log = PassLog()
    before = _greeter_up_then_reconfigure(h, log, "howdy")
    drive(h, log, seconds=30, until=lambda: greeting_everywhere(h, "howdy"))
    assert _ids(h, "Greeter") == before  # reconfigured in place while Faulty crashes
    drive(h, log, seconds=60, until=lambda: any("3 times in a row" in m for m in log.messages))
    created = log.created_after(0)
    gaps = [b - a for a, b in itertools.pairwise(created)]
    print(f"crash loop: containers created at {[round(t, 1) for t in created]}")
    # Three failures counted in a row although each replica ran for a second: a count reset by
    # every short-lived RUNNING replica never passes 1 (and retries every few seconds forever).
    assert len(created) == 3, created
    assert gaps[0] >= 1.0 and gaps[1] >= 2.0, gaps  # each retry waited at least its backoff
    delays = _retry_delays(log.messages)
    drive(h, log, seconds=1)
    assert max(_retry_delays(log.messages)) >= 3, sorted(set(delays))  # the next wait is 4 s
    assert len(log.first_seen) == 3  # and nothing started meanwhile
    assert any(CRASH_TEXT in m and "3 times in a row" in m for m in log.messages)
    info = deployment(h, "Faulty")
    assert info is not None and CRASH_TEXT in info.message, h.describe()
    assert deployment(h, "Greeter").status is DeploymentStatus.HEALTHY  # type: ignore[union-attr]


def test_hang_in_init_is_bounded_by_the_health_check(tmp_path: Path, instance_name: str) -> None:
    h = Harness(fault_tree(tmp_path, "hang_init"), instance_name)
    log = PassLog()
    before = _greeter_up_then_reconfigure(h, log, "hola")
    drive(h, log, seconds=60, until=lambda: len(log.first_seen) >= 2)
    assert greeting_everywhere(h, "hola") and _ids(h, "Greeter") == before, h.describe()
    created = log.created_after(0)
    # start period 1 s + 3 probes 1 s apart (+ probe start-up): replaced well within 15 s,
    # and not at once (the failure counts towards the backoff like a crash).
    assert 4.0 <= created[1] - created[0] <= 15.0, created
    unhealthy = [m for m in log.messages if "health check failed" in m]
    assert unhealthy and "__init__ has not returned after" in unhealthy[0], log.messages[-5:]
    assert any("Retrying" in m or "attempts before UNHEALTHY" in m for m in log.messages)
    app = h.reconciler.snapshot.applications[0]
    assert app.status is not ApplicationStatus.RUNNING
    assert len(running(h, "Faulty")) == 0


def test_hung_check_health_is_reported_and_replaced(tmp_path: Path, instance_name: str) -> None:
    h = Harness(fault_tree(tmp_path, "hang_health"), instance_name)
    log = PassLog()
    before = _greeter_up_then_reconfigure(h, log, "salut")
    drive(h, log, seconds=60, until=lambda: len(log.first_seen) >= 2)
    assert greeting_everywhere(h, "salut") and _ids(h, "Greeter") == before, h.describe()
    first = min(log.first_seen, key=log.first_seen.__getitem__)
    reported = [m for m in log.messages if "health check failed" in m]
    assert reported, log.messages[-5:]
    # The replica's own words, unless a loaded machine slows the probe past Docker's timeout.
    said = ("TimeoutError: check_health() did not return within 1.0s", "exceeded timeout")
    assert any(text in reported[0] for text in said), reported[0]
    # The hung replica is gone once it is replaced: SIGTERM ends it within its 2 s grace.
    wait_for(
        lambda: (h.reconciler.run_pass(), first not in {r.container_id for r in h.replicas()})[1],
        timeout=10,
        what="the hung replica removed",
    )


def test_sigterm_ignored_is_force_removed_without_blocking(
    tmp_path: Path, instance_name: str, docker_client: Any
) -> None:
    grace = 6.0  # long enough that a slow pass on a busy machine is not taken for a wait
    h = Harness(fault_tree(tmp_path, "ignore_term", faulty_replicas=2, grace=grace), instance_name)
    h.converge(timeout=90)
    greeters = _ids(h, "Greeter")
    h.edit("serve_config.yaml", "num_replicas: 2", "num_replicas: 1")
    h.edit("serve_config.yaml", "greeting: hello", "greeting: ciao")
    log = PassLog()
    drive(
        h,
        log,
        seconds=10,
        until=lambda: any(r.state is ReplicaState.STOPPING for r in h.replicas("Faulty")),
    )
    drained_at = time.monotonic()
    victim = next(r for r in h.replicas("Faulty") if r.state is ReplicaState.STOPPING)
    # The pass goes on while the victim ignores SIGTERM: the healthy deployment is reconfigured.
    drive(h, log, seconds=grace - 1.0, until=lambda: greeting_everywhere(h, "ciao"))
    assert greeting_everywhere(h, "ciao") and _ids(h, "Greeter") == greeters
    assert docker_client.containers.get(victim.container_id).status == "running"
    alive = {r.container_id for r in h.replicas("Faulty")}
    assert victim.container_id in alive, "removed before its graceful_shutdown_timeout_s"
    drive(
        h,
        log,
        seconds=grace + 8,
        until=lambda: victim.container_id not in {r.container_id for r in h.replicas()},
    )
    gone_after = time.monotonic() - drained_at
    print(f"SIGTERM ignored: removed {gone_after:.1f}s after the drain (grace {grace}s)")
    # the deadline rounds up to a whole second: removed at the first pass after it
    assert grace - 0.5 <= gone_after <= grace + 4.0, gone_after
    assert max(log.durations) < grace - 1.5, log.durations  # no pass waited for the drain
    assert len(running(h, "Faulty")) == 1
