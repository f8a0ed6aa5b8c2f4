"""The reconcile pass against the real engine (issue 3): what `reconciler up` and the daemon do."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import ApplicationStatus, DeploymentStatus, ReplicaState
from tests.e2e.conftest import ENGINES_SLOW_ON_SWARM
from tests.support import wait_for

pytestmark = pytest.mark.docker


def _ids(replicas: list[Any]) -> set[str]:
    return {r.container_id for r in replicas}


@pytest.mark.parametrize("harness_for", ENGINES_SLOW_ON_SWARM, indirect=True)
def test_fruit_example_comes_up_running(fruit_tree: Path, harness_for: Any) -> None:
    h = harness_for(fruit_tree)
    h.converge()
    snap = h.reconciler.snapshot
    assert [a.status for a in snap.applications] == [ApplicationStatus.RUNNING]
    deployments = {d.name: d for d in snap.applications[0].deployments}
    assert set(deployments) == {"MangoStand", "OrangeStand", "PearStand", "FruitMarket"}
    assert all(d.status == DeploymentStatus.HEALTHY for d in deployments.values())
    assert len(h.running("FruitMarket")) == 2
    mango = h.running("MangoStand")[0]
    assert h.call(mango, "check_price", 2) == 6
    market = h.running("FruitMarket")[0]
    assert h.call(market, "check_price", "PEAR", 2) == 8  # through a handle to PearStand
    assert h.call(market, "check_price", "TOMATO", 2) == -1


@pytest.mark.parametrize("harness_for", ENGINES_SLOW_ON_SWARM, indirect=True)
def test_scale_up_and_down_keeps_the_original_containers(
    greeter_tree: Path, harness_for: Any
) -> None:
    h = harness_for(greeter_tree)
    h.converge()
    original = _ids(h.running("Greeter"))
    assert len(original) == 2
    h.edit("serve_config.yaml", "num_replicas: 2", "num_replicas: 4")
    h.converge()
    scaled = h.running("Greeter")
    assert len(scaled) == 4 and original <= _ids(scaled)
    h.edit("serve_config.yaml", "num_replicas: 4", "num_replicas: 2")
    h.converge()
    assert _ids(h.running("Greeter")) == original
    assert len(h.replicas("Greeter")) == 2  # the two extra ones are gone, not just stopped


@pytest.mark.parametrize("harness_for", ENGINES_SLOW_ON_SWARM, indirect=True)
def test_user_config_change_reconfigures_in_place(greeter_tree: Path, harness_for: Any) -> None:
    h = harness_for(greeter_tree)
    h.converge()
    before = h.running("Greeter")
    assert {h.call(r, "greet", "ann") for r in before} == {"hello, ann (v1)"}
    h.edit("serve_config.yaml", "greeting: hello", "greeting: howdy")
    h.converge()
    after = h.running("Greeter")
    assert _ids(after) == _ids(before)
    assert {h.call(r, "greet", "ann") for r in after} == {"howdy, ann (v1)"}


@pytest.mark.parametrize("harness_for", ENGINES_SLOW_ON_SWARM, indirect=True)
def test_code_change_replaces_every_replica(greeter_tree: Path, harness_for: Any) -> None:
    h = harness_for(greeter_tree)
    h.converge()
    before = _ids(h.running("Greeter"))
    h.edit("greeter.py", 'VERSION = "v1"', 'VERSION = "v2"')
    h.converge()
    after = h.running("Greeter")
    assert len(after) == 2 and not (_ids(after) & before)
    assert {h.call(r, "greet", "bo") for r in after} == {"hello, bo (v2)"}


def test_killed_replica_is_replaced(
    greeter_tree: Path, harness_for: Any, docker_client: Any
) -> None:
    h = harness_for(greeter_tree)
    h.converge()
    victim = h.running("Greeter")[0]
    docker_client.containers.get(victim.container_id).kill()
    h.converge()
    running = h.running("Greeter")
    assert len(running) == 2 and victim.container_id not in _ids(running)


def test_constructor_error_is_unhealthy_with_the_users_text_and_backs_off(
    greeter_tree: Path, harness_for: Any, docker_client: Any, instance_name: str
) -> None:
    h = harness_for(greeter_tree)
    h.edit(
        "greeter.py",
        '        self.greeting = "?"',
        '        raise ValueError("no greeting configured for this stand")',
    )
    h.edit("serve_config.yaml", "num_replicas: 2", "num_replicas: 1")
    created: set[str] = set()

    def unhealthy() -> bool:
        h.reconciler.run_pass()
        created.update(r.container_id for r in h.replicas("Greeter"))
        deps = [d for a in h.reconciler.snapshot.applications for d in a.deployments]
        return bool(deps) and deps[0].status == DeploymentStatus.UNHEALTHY

    wait_for(unhealthy, timeout=90, interval=0.3, what="Greeter UNHEALTHY")
    app = h.reconciler.snapshot.applications[0]
    assert app.status == ApplicationStatus.DEPLOY_FAILED
    message = app.deployments[0].message
    assert "ValueError: no greeting configured for this stand" in message
    # Backoff: over the next 4 seconds of eager passes, at most one more attempt starts.
    seen_before = len(created)
    deadline = time.monotonic() + 4
    pause = threading.Event()
    while time.monotonic() < deadline:
        h.reconciler.run_pass()
        created.update(r.container_id for r in h.replicas("Greeter"))
        pause.wait(0.2)
    assert len(created) - seen_before <= 1, "replicas are recreated in a hot loop"


@pytest.mark.parametrize("harness_for", ENGINES_SLOW_ON_SWARM, indirect=True)
def test_restarted_reconciler_adopts_running_replicas(greeter_tree: Path, harness_for: Any) -> None:
    h = harness_for(greeter_tree)
    h.converge()
    h.edit("serve_config.yaml", "greeting: hello", "greeting: hi")
    h.converge()
    before = {r.container_id: r.name for r in h.replicas()}
    h.restart()
    h.converge()
    assert {r.container_id: r.name for r in h.replicas()} == before
    assert {h.call(r, "greet", "cy") for r in h.running("Greeter")} == {"hi, cy (v1)"}


@pytest.mark.parametrize("harness_for", ENGINES_SLOW_ON_SWARM, indirect=True)
def test_unchanged_config_is_a_noop(greeter_tree: Path, harness_for: Any) -> None:
    h = harness_for(greeter_tree)
    h.converge()
    before = {r.container_id for r in h.replicas()}
    for _ in range(3):
        assert h.reconciler.run_pass() is None  # settled: the next pass waits a full interval
    assert {r.container_id for r in h.replicas()} == before
    assert all(r.state == ReplicaState.RUNNING for r in h.replicas())
