"""Whole pass sequences without Docker: the real loader, store, planner, retry policy and status
over behavioural models of the engine and the git branch (pass_model.py). Each case is a table of
steps, each step an event followed by what /status must then say."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from pass_model import Daemon, ModelBranch, ModelEngine, config_text

from reconciler.errors import Retry
from reconciler.model import ApplicationStatus, DeploymentStatus, Snapshot
from reconciler.reconcile.retry import REQUEUE_S, ROOM_RECHECK_S

RUNNING, DEPLOY_FAILED = ApplicationStatus.RUNNING, ApplicationStatus.DEPLOY_FAILED
DEPLOYING = ApplicationStatus.DEPLOYING
INVALID = "num_replica: 2"  # a misspelt key


@dataclass
class World:
    daemon: Daemon
    commits: dict[str, str]

    @property
    def branch(self) -> ModelBranch:
        return self.daemon.branch

    @property
    def engine(self) -> ModelEngine:
        return self.daemon.engine


Event = Callable[[World], None]


def push(name: str, text: str) -> Event:
    def event(w: World) -> None:
        w.commits[name] = w.branch.push(text)

    return event


def reset_to(name: str) -> Event:
    """`git reset --hard NAME && git push -f`."""

    def event(w: World) -> None:
        w.branch.tip = w.commits[name]

    return event


def set_attr(what: str, attr: str, value: object) -> Event:
    def event(w: World) -> None:
        setattr(getattr(w, what), attr, value)

    return event


def capacity(cpus: float) -> Event:
    def event(w: World) -> None:
        w.engine.capacity_now = replace(w.engine.capacity_now, cpus=cpus)

    return event


def restart(w: World) -> None:
    w.daemon.restart()


@dataclass(frozen=True)
class Expect:
    status: ApplicationStatus
    applied: str | None = None  # the name given to the commit at push
    message: str = ""  # a part of the application's message
    deployment: DeploymentStatus | None = None
    deployment_message: str = ""
    source_error: str = ""
    engine_error: str = ""
    errors: bool = False  # /status lists the refused commit's errors
    live: int | None = None  # containers starting or running

    def check(self, w: World, snap: Snapshot) -> None:
        app = snap.applications[0]
        seen = f"{app.status} {app.message!r} {snap.loop} {snap.commits.applied}"
        assert app.status == self.status, seen
        if self.applied is not None:
            assert snap.commits.applied == w.commits[self.applied], seen
        assert self.message in app.message, seen
        if self.deployment is not None:
            dep = app.deployments[0]
            assert dep.status == self.deployment, dep
            assert self.deployment_message in dep.message, dep
        assert self.source_error in (snap.loop.source_error or ""), seen
        assert self.engine_error in (snap.loop.engine_error or ""), seen
        assert bool(snap.commits.errors) == self.errors, snap.commits
        if self.live is not None:
            assert len(w.engine.live()) == self.live, w.engine.containers


GOOD = config_text(replicas=2, greeting="hello")
FIXED = config_text(replicas=2, greeting="fixed")
BROKEN = GOOD.replace("num_replicas: 2", INVALID)

CASES: dict[str, list[tuple[Event, Expect]]] = {
    "invalid then revert": [
        (push("A", GOOD), Expect(RUNNING, "A", live=2)),
        (push("B", BROKEN), Expect(DEPLOY_FAILED, "A", "was not applied", errors=True, live=2)),
        # the everyday undo: the branch back on the applied commit
        (reset_to("A"), Expect(RUNNING, "A", errors=False, live=2)),
    ],
    "invalid then fix": [
        (push("A", GOOD), Expect(RUNNING, "A")),
        (push("B", BROKEN), Expect(DEPLOY_FAILED, "A", "Still running commit", errors=True)),
        (push("C", FIXED), Expect(RUNNING, "C", live=2)),
    ],
    "revert, then the refused commit again": [
        (push("A", GOOD), Expect(RUNNING, "A")),
        (push("B", BROKEN), Expect(DEPLOY_FAILED, "A", errors=True)),
        (reset_to("A"), Expect(RUNNING, "A")),
        (reset_to("B"), Expect(DEPLOY_FAILED, "A", errors=True)),
    ],
    "source down then up": [
        (push("A", GOOD), Expect(RUNNING, "A")),
        (set_attr("branch", "unreachable", True), Expect(RUNNING, "A", source_error="cannot")),
        (push("B", FIXED), Expect(RUNNING, "A", source_error="cannot reach")),
        (set_attr("branch", "unreachable", False), Expect(RUNNING, "B", source_error="")),
    ],
    "branch deleted then back": [
        (push("A", GOOD), Expect(RUNNING, "A")),
        (set_attr("branch", "deleted", True), Expect(RUNNING, "A", source_error="not found")),
        (set_attr("branch", "deleted", False), Expect(RUNNING, "A", source_error="")),
    ],
    "engine down then up": [
        (push("A", GOOD), Expect(RUNNING, "A", live=2)),
        (set_attr("engine", "down", True), Expect(RUNNING, "A", engine_error="not reachable")),
        (push("B", FIXED), Expect(RUNNING, "B", engine_error="not reachable")),
        (set_attr("engine", "down", False), Expect(RUNNING, "B", engine_error="", live=2)),
    ],
    "pending then fits": [
        (
            push("A", config_text(replicas=4, cpus=1.0)),
            Expect(
                DEPLOYING,
                "A",
                deployment=DeploymentStatus.UPDATING,
                deployment_message="2 of 4 replicas cannot start",
                live=2,
            ),
        ),
        (capacity(8.0), Expect(RUNNING, "A", live=4)),
    ],
    "pending then scaled down": [
        (push("A", config_text(replicas=4, cpus=1.0)), Expect(DEPLOYING, "A", live=2)),
        (push("B", config_text(replicas=2, cpus=1.0)), Expect(RUNNING, "B", live=2)),
    ],
    "restart with state": [
        (push("A", GOOD), Expect(RUNNING, "A", live=2)),
        (push("B", BROKEN), Expect(DEPLOY_FAILED, "A", errors=True)),
        (restart, Expect(DEPLOY_FAILED, "A", errors=True, live=2)),
        (reset_to("A"), Expect(RUNNING, "A", live=2)),
    ],
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engine = ModelEngine()
    engine.capacity_now = replace(engine.capacity_now, cpus=2.0)
    daemon = Daemon(ModelBranch(tmp_path / "branch"), engine, tmp_path / "state")
    yield World(daemon, {})
    daemon.close()


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_sequence(world: World, steps: list[tuple[Event, Expect]]) -> None:
    for i, (event, expect) in enumerate(steps):
        event(world)
        snap = world.daemon.settle()
        try:
            expect.check(world, snap)
        except AssertionError as exc:
            raise AssertionError(f"step {i}: {exc}") from None


def test_a_revert_keeps_the_refused_commit_in_history(world: World) -> None:
    good = world.branch.push(GOOD)
    world.daemon.settle()
    bad = world.branch.push(BROKEN)
    world.daemon.settle()
    world.branch.tip = good
    snap = world.daemon.settle()
    assert snap.commits.latest == snap.commits.applied == good
    assert snap.commits.attempted == bad and snap.commits.outcome == "invalid"
    outcomes = {(e.commit, e.outcome) for e in world.daemon.store.history(10)}
    assert (bad, "invalid") in outcomes and (good, "applied") in outcomes


def test_a_restart_adopts_what_runs_without_restarting_it(world: World) -> None:
    world.branch.push(GOOD)
    world.daemon.settle()
    before, starts = set(world.engine.containers), world.engine.starts
    world.daemon.restart()
    snap = world.daemon.settle()
    assert snap.applications[0].status is RUNNING
    assert set(world.engine.containers) == before and world.engine.starts == starts


def test_a_huge_commit_starts_only_what_fits_and_leaves_the_rest_running(world: World) -> None:
    world.engine.capacity_now = replace(world.engine.capacity_now, cpus=8.0, max_replicas=50)
    world.branch.push(GOOD)
    world.daemon.settle()
    world.branch.push(config_text(replicas=100_000, cpus=0.01))
    snap = world.daemon.settle()
    assert len(world.engine.live()) == 50  # the instance's replica cap
    dep = snap.applications[0].deployments[0]
    assert dep.status is DeploymentStatus.UPDATING and dep.pending_replicas == 100_000 - 50
    assert "--max-replicas" in dep.message
    assert snap.pending_replicas == 100_000 - 50
    # Waiting for room is not a busy loop: the next look is seconds away, not half a second.
    assert world.daemon.run() == ROOM_RECHECK_S


def test_a_replica_that_can_never_fit_says_so(world: World) -> None:
    world.branch.push(config_text(replicas=1, cpus=16.0))
    dep = world.daemon.settle().applications[0].deployments[0]
    assert "more than the whole host has" in dep.message and dep.pending_replicas == 1


def test_a_rolling_update_on_a_full_host_makes_room_first(world: World) -> None:
    # 2 replicas of 1 CPU fill the 2 CPUs; a code change must still roll (stop-first).
    world.branch.push(config_text(replicas=2, cpus=1.0))
    world.daemon.settle()
    old = set(world.engine.containers)
    world.branch.push(config_text(replicas=2, cpus=1.0), code=_new_code())
    snap = world.daemon.settle(limit=60)
    assert snap.applications[0].status is RUNNING
    assert not old & set(world.engine.containers) and len(world.engine.live()) == 2


def _new_code() -> str:
    from pass_model import APP_CODE

    return APP_CODE.replace("return self.greeting", "return self.greeting.upper()")


def test_retry_classes_and_backoff(world: World) -> None:
    world.branch.push(GOOD)
    world.daemon.settle()
    world.branch.unreachable = True
    delays = [world.daemon.run() for _ in range(3)]
    assert delays == [15.0, 30.0, 60.0]  # one interval, doubling (only the remote fails)
    assert world.daemon.snapshot.loop.retry == Retry.TRANSIENT
    world.branch.unreachable = False
    world.daemon.run()
    world.branch.deleted = True
    assert world.daemon.run() is None  # stalled: the next poll, one interval away
    assert world.daemon.snapshot.loop.retry == Retry.STALLED
    assert world.daemon.run() is None  # ... and it does not grow


def test_a_failing_remote_does_not_slow_a_rollout_nor_get_asked_every_pass(world: World) -> None:
    world.branch.push(GOOD)
    world.daemon.settle()
    world.branch.unreachable = True
    reconciler = world.daemon.reconciler
    reconciler.run_pass()  # the failure: the remote is not asked again for one interval
    asked = world.branch.heads_asked
    world.engine.containers.clear()  # both replicas vanish: the pass must replace them now
    world.daemon.clock[0] += 5.0  # a replica-failure trigger, before the interval is over
    assert reconciler.run_pass() == REQUEUE_S
    assert world.branch.heads_asked == asked
    assert len(world.engine.live()) == 2
    assert world.daemon.snapshot.loop.source_error  # still said while backing off
