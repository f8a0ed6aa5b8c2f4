"""Pin, unpin and rollback as whole pass sequences without Docker (pass_model.py): the real
target, store, planner and status over the behavioural models of the engine and the branch.
Each case is a table of steps, an event then what the snapshot (and the pin's answer) must say."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pass_model import Daemon, ModelBranch, ModelEngine, config_text

from reconciler.model import ApplicationStatus, Snapshot
from reconciler.pins import PinAnswer, PinState
from reconciler.records import Event

RUNNING, DEPLOY_FAILED = ApplicationStatus.RUNNING, ApplicationStatus.DEPLOY_FAILED

A_TEXT = config_text(greeting="a")
B_TEXT = config_text(greeting="b")
C_TEXT = config_text(greeting="c", replicas=3)
BROKEN = A_TEXT.replace("num_replicas: 2", "num_replica: 2")


@dataclass
class World:
    daemon: Daemon
    commits: dict[str, str] = field(default_factory=dict)
    answer: Future[PinAnswer] | None = None

    @property
    def branch(self) -> ModelBranch:
        return self.daemon.branch

    def greetings(self) -> set[str]:
        """The user_config every live replica runs (the model engine keeps its hash)."""
        return {r.user_config_hash or "" for r in self.daemon.engine.live()}


Step = Callable[[World], None]


def push(name: str, text: str) -> Step:
    def step(w: World) -> None:
        w.commits[name] = w.branch.push(text, subject=f"commit {name}")

    return step


def pin(name: str) -> Step:
    def step(w: World) -> None:
        w.answer = w.daemon.target.submit_pin(w.commits.get(name, name)[:10])

    return step


def unpin(w: World) -> None:
    w.answer = w.daemon.target.submit_unpin()


def rollback(w: World) -> None:
    w.answer = w.daemon.target.submit_rollback()


def restart(w: World) -> None:
    w.daemon.restart()
    w.answer = None


@dataclass(frozen=True)
class Expect:
    status: ApplicationStatus
    applied: str
    pinned: str | None = None
    latest: str | None = None
    answer: PinState | None = None
    message: str = ""  # a part of the application's message
    behind: bool = False

    def check(self, w: World, snap: Snapshot) -> None:
        app, c = snap.applications[0], snap.commits
        seen = f"{app.status} {app.message!r} applied={c.applied} pinned={c.pinned}"
        assert app.status == self.status, seen
        assert c.applied == w.commits[self.applied], seen
        assert c.pinned == (w.commits[self.pinned] if self.pinned else None), seen
        if self.latest is not None:
            assert c.latest == w.commits[self.latest], seen
        assert c.behind_pin is self.behind, seen
        assert self.message in app.message, seen
        if self.answer is not None:
            assert w.answer is not None and w.answer.done(), "the request was not answered"
            assert w.answer.result().state is self.answer, w.answer.result()


CASES: dict[str, list[tuple[Step, Expect]]] = {
    "the pin holds while the branch moves, unpin follows it": [
        (push("A", A_TEXT), Expect(RUNNING, "A")),
        (push("B", B_TEXT), Expect(RUNNING, "B")),
        (
            pin("A"),
            Expect(
                RUNNING,
                "A",
                pinned="A",
                answer=PinState.PINNED,
                behind=True,
                message="waiting behind the pin",
            ),
        ),
        (
            push("C", C_TEXT),
            Expect(
                RUNNING, "A", pinned="A", latest="C", behind=True, message="The branch is at commit"
            ),
        ),
        (unpin, Expect(RUNNING, "C", answer=PinState.UNPINNED)),
    ],
    "pinning what runs holds it at once": [
        (push("A", A_TEXT), Expect(RUNNING, "A")),
        (pin("A"), Expect(RUNNING, "A", pinned="A", answer=PinState.PINNED, message="Pinned at")),
        (push("B", B_TEXT), Expect(RUNNING, "A", pinned="A", latest="B", behind=True)),
        (pin("A"), Expect(RUNNING, "A", pinned="A", answer=PinState.PINNED, behind=True)),
    ],
    "rollback steps back along the branch's deploys": [
        (push("A", A_TEXT), Expect(RUNNING, "A")),
        (push("B", B_TEXT), Expect(RUNNING, "B")),
        (push("C", C_TEXT), Expect(RUNNING, "C")),
        (
            rollback,
            Expect(
                RUNNING,
                "B",
                pinned="B",
                answer=PinState.PINNED,
                behind=True,
                message="rollback from commit",
            ),
        ),
        (rollback, Expect(RUNNING, "A", pinned="A", answer=PinState.PINNED, behind=True)),
        (rollback, Expect(RUNNING, "A", pinned="A", answer=PinState.NO_PREVIOUS, behind=True)),
        (unpin, Expect(RUNNING, "C", answer=PinState.UNPINNED)),
    ],
    "an invalid commit is refused as a pin, and the pin not taken": [
        (push("A", A_TEXT), Expect(RUNNING, "A")),
        (push("B", BROKEN), Expect(DEPLOY_FAILED, "A", message="was not applied")),
        (pin("B"), Expect(DEPLOY_FAILED, "A", answer=PinState.REFUSED)),
        # holding what runs: the refused head waits behind the pin instead of failing the app
        (
            pin("A"),
            Expect(
                RUNNING,
                "A",
                pinned="A",
                answer=PinState.PINNED,
                behind=True,
                message="that commit was refused",
            ),
        ),
        (unpin, Expect(DEPLOY_FAILED, "A", answer=PinState.UNPINNED, message="was not applied")),
    ],
    "a restart keeps the pin": [
        (push("A", A_TEXT), Expect(RUNNING, "A")),
        (pin("A"), Expect(RUNNING, "A", pinned="A", answer=PinState.PINNED)),
        (push("B", B_TEXT), Expect(RUNNING, "A", pinned="A", behind=True)),
        (restart, Expect(RUNNING, "A", pinned="A", latest="B", behind=True)),
        (unpin, Expect(RUNNING, "B", answer=PinState.UNPINNED)),
    ],
    "unpin with nothing pinned, pin of an unknown commit": [
        (push("A", A_TEXT), Expect(RUNNING, "A")),
        (unpin, Expect(RUNNING, "A", answer=PinState.NOT_PINNED)),
        (pin("f" * 12), Expect(RUNNING, "A", answer=PinState.UNKNOWN)),
        (rollback, Expect(RUNNING, "A", answer=PinState.NO_PREVIOUS)),
    ],
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    daemon = Daemon(ModelBranch(tmp_path / "branch"), ModelEngine(), tmp_path / "state")
    yield World(daemon)
    daemon.close()


@pytest.mark.parametrize("steps", CASES.values(), ids=CASES.keys())
def test_sequence(world: World, steps: list[tuple[Step, Expect]]) -> None:
    for i, (step, expect) in enumerate(steps):
        step(world)
        snap = world.daemon.settle()
        try:
            expect.check(world, snap)
        except AssertionError as exc:
            raise AssertionError(f"step {i}: {exc}") from None


def test_a_pin_replaces_replicas_as_a_deploy_does(world: World) -> None:
    a = world.branch.push(A_TEXT)
    world.daemon.settle()
    a_replicas = world.greetings()
    world.branch.push(C_TEXT)
    world.daemon.settle()
    assert len(world.daemon.engine.live()) == 3
    world.daemon.target.submit_rollback()
    snap = world.daemon.settle()
    assert snap.commits.applied == snap.commits.pinned == a
    assert len(world.daemon.engine.live()) == 2 and world.greetings() == a_replicas


def test_a_refused_head_is_not_prepared_again_after_unpin(world: World) -> None:
    world.branch.push(A_TEXT)
    world.daemon.settle()
    bad = world.branch.push(BROKEN)
    world.daemon.settle()
    world.daemon.target.submit_rollback()  # nothing before A: refused, but asked
    world.daemon.target.submit_pin(world.daemon.snapshot.commits.applied or "")
    world.daemon.settle()
    world.daemon.target.submit_unpin()
    world.daemon.settle(limit=5)
    assert world.branch.checkouts[bad] == 1


def test_the_timeline_tells_the_story(world: World) -> None:
    a = world.branch.push(A_TEXT, subject="greet with a")
    world.daemon.settle()
    b = world.branch.push(BROKEN, subject="typo")
    world.daemon.settle()
    c = world.branch.push(C_TEXT, subject="three replicas, greet with c")
    world.daemon.settle()
    world.daemon.target.submit_rollback()
    world.daemon.settle()
    world.daemon.target.submit_unpin()
    timeline = world.daemon.settle().timeline
    assert [(e.commit, e.event) for e in timeline] == [
        (c, Event.APPLIED),  # unpinned: the branch head is deployed again
        (a, Event.UNPINNED),
        (a, Event.PINNED),
        (c, Event.APPLIED),
        (b, Event.INVALID),
        (a, Event.APPLIED),
    ]
    _, unpinned, pinned, applied_c, refused, _ = timeline
    assert pinned.message == f"rollback from commit {c[:12]}"
    assert pinned.info.subject == "greet with a" and unpinned.info.subject == "greet with a"
    assert refused.info.subject == "typo" and refused.info.author == "model author"
    assert any("num_replica" in e for e in refused.errors) and ":" in refused.errors[0]
    (change,) = applied_c.changes
    assert (change.deployment, change.kind) == ("Hello", "reconfigure")
    assert "num_replicas 2 -> 3" in change.reasons and "user_config changed" in change.reasons
    (back,) = pinned.changes
    assert "num_replicas 3 -> 2" in back.reasons
    # the timeline is the store's: a new process shows the same
    world.daemon.restart()
    assert [e.event for e in world.daemon.settle().timeline][:3] == [
        Event.APPLIED,
        Event.UNPINNED,
        Event.PINNED,
    ]


def test_a_pin_that_cannot_be_restored_is_dropped_rather_than_run_nothing(world: World) -> None:
    a = world.branch.push(A_TEXT)
    world.daemon.settle()
    world.daemon.target.submit_pin(a)
    world.daemon.settle()
    b = world.branch.push(B_TEXT)
    assert world.daemon.settle().commits.pinned == a
    # the pinned commit's config no longer loads (say it reads an env var that is gone)
    (world.branch.root / a / "serve_config.yaml").write_text(BROKEN)
    world.daemon.restart()
    snap = world.daemon.settle()
    assert snap.commits.pinned is None and snap.commits.applied == b
    assert snap.applications[0].status is RUNNING
    assert snap.timeline[1].event is Event.PIN_REFUSED and snap.timeline[1].commit == a


def test_run_once_converges_to_the_pin_when_the_head_is_refused(world: World) -> None:
    from reconciler.reconcile.converge import Verdict, verdict_of

    a = world.branch.push(A_TEXT)
    world.daemon.settle()
    world.branch.push(BROKEN)
    world.daemon.settle()
    assert verdict_of(world.daemon.reconciler) is Verdict.INVALID
    world.daemon.target.submit_pin(a)
    world.daemon.settle()
    assert verdict_of(world.daemon.reconciler) is Verdict.RUNNING
