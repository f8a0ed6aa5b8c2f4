"""The pure parts of pin and rollback (which commit `rollback` goes back to) and of the
dashboard's replica events (derived from two consecutive observations)."""

from __future__ import annotations

from dataclasses import replace

from reconciler import events
from reconciler.model import HistoryEntry, ObservedReplica, ReplicaState
from reconciler.pins import rollback_choice


def _history(*entries: tuple[str, str]) -> list[HistoryEntry]:
    """Oldest first in the arguments; newest first in the result, as the store gives it."""
    rows = [HistoryEntry(c, float(i), outcome) for i, (c, outcome) in enumerate(entries)]
    return list(reversed(rows))


def test_rollback_steps_back_one_deploy_at_a_time() -> None:
    h = _history(("A", "applied"), ("B", "applied"), ("C", "applied"))
    assert rollback_choice(h, "C") == "B"
    assert rollback_choice(h, "B") == "A"
    assert rollback_choice(h, "A") is None


def test_rollback_skips_refused_commits_and_uses_each_commits_latest_deploy() -> None:
    # A, B, a refused X, then a force-push back to A, then C: before C ran A; before A, B.
    h = _history(
        ("A", "applied"), ("B", "applied"), ("X", "invalid"), ("A", "applied"), ("C", "applied")
    )
    assert rollback_choice(h, "C") == "A"
    assert rollback_choice(h, "A") == "B"


def test_rollback_from_a_commit_the_branch_never_deployed_goes_to_its_newest_deploy() -> None:
    h = _history(("A", "applied"), ("B", "applied"))
    assert rollback_choice(h, "P") == "B"
    assert rollback_choice(h, None) == "B"
    assert rollback_choice([], "A") is None


def _replica(cid: str, state: ReplicaState, error: str | None = None) -> ObservedReplica:
    return ObservedReplica(
        cid, f"serve-t-default-D-{cid}", "default", "D", 0, "v1", state, error=error
    )


def test_the_first_look_is_one_summary_event() -> None:
    seen = [_replica("a", ReplicaState.RUNNING), _replica("b", ReplicaState.RUNNING)]
    (only,) = events.between(None, seen, 10.0)
    assert only.kind == "adopted" and "2 replicas" in only.message
    assert events.between(None, [], 10.0) == []


def test_events_follow_each_replica_between_two_observations() -> None:
    before = {
        r.container_id: r
        for r in (
            _replica("starting", ReplicaState.STARTING),
            _replica("running", ReplicaState.RUNNING),
            _replica("sick", ReplicaState.UNHEALTHY, "boom"),
            _replica("gone", ReplicaState.STOPPING),
            _replica("steady", ReplicaState.RUNNING),
        )
    }
    after = [
        replace(before["starting"], state=ReplicaState.RUNNING),
        replace(before["running"], state=ReplicaState.FAILED, error="KeyError: 'price'"),
        replace(before["sick"], state=ReplicaState.RUNNING, error=None),
        before["steady"],
        _replica("new", ReplicaState.STARTING),
    ]
    found = {
        (e.replica.rsplit("-", 1)[-1], e.kind, e.message)
        for e in events.between(before, after, 5.0)
    }
    assert found == {
        ("starting", "ready", ""),
        ("running", "failed", "KeyError: 'price'"),
        ("sick", "recovered", ""),
        ("new", "started", "version v1"),
        ("gone", "removed", ""),
    }


def test_the_event_log_is_bounded_and_newest_first() -> None:
    log = events.EventLog(keep=5, shown=3)
    assert log.recent() == ()
    for i in range(8):
        log.add([events.ReplicaEvent(float(i), "default", "D", f"r{i}", "started")])
    assert [e.replica for e in log.recent()] == ["r7", "r6", "r5"]
    before = log.recent()
    log.add([])
    assert log.recent() is before  # nothing new: the same tuple, nothing rebuilt
