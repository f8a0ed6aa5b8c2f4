"""Replica events for the dashboard, derived by comparing two consecutive observations (started,
ready, draining, removed, failed or unhealthy with the user's own text, recovered), and kept in a
bounded ring. Level-triggered like everything else: nothing decides actions from them. Pure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from reconciler.model import ObservedReplica, ReplicaState
from reconciler.records import ReplicaEvent

KEEP = 200  # events kept in the ring
SHOWN = 50  # the newest, in the snapshot

_ENTERED: dict[ReplicaState, str] = {
    ReplicaState.STARTING: "started",
    ReplicaState.RUNNING: "ready",
    ReplicaState.STOPPING: "draining",
    ReplicaState.FAILED: "failed",
    ReplicaState.UNHEALTHY: "unhealthy",
}

Seen = Mapping[str, ObservedReplica]


def _event(r: ObservedReplica, kind: str, now: float, message: str = "") -> ReplicaEvent:
    return ReplicaEvent(now, r.app, r.deployment, r.name, kind, message)


def _entered(before: ObservedReplica | None, r: ObservedReplica, now: float) -> ReplicaEvent | None:
    if before is not None and before.state is r.state:
        return None
    was = before.state if before is not None else None
    if was is ReplicaState.UNHEALTHY and r.state is ReplicaState.RUNNING:
        return _event(r, "recovered", now)
    kind = _ENTERED.get(r.state)
    if kind is None:
        return None
    if before is None and r.state is ReplicaState.RUNNING:
        kind = "started"  # ready at first sight (a start that answered at once)
    detail = r.error or ""
    if kind == "started":
        detail = f"version {r.version}"
    return _event(r, kind, now, detail)


def between(
    before: Seen | None, after: Sequence[ObservedReplica], now: float
) -> list[ReplicaEvent]:
    """The events that explain how `before` (None: the daemon's first look) became `after`.
    The first look reports one summary event rather than one per replica it adopts."""
    if before is None:
        if not after:
            return []
        n = len(after)
        text = f"{n} replica{'s' if n != 1 else ''} found running at start-up"
        return [ReplicaEvent(now, "", "", "", "adopted", text)]
    events = [e for r in after if (e := _entered(before.get(r.container_id), r, now))]
    now_ids = {r.container_id for r in after}
    events += [_event(r, "removed", now) for cid, r in before.items() if cid not in now_ids]
    return events


class EventLog:
    """The ring of recent events; `recent()` is an immutable tuple, newest first, rebuilt only
    when something was added (the snapshot is built every pass)."""

    def __init__(self, keep: int = KEEP, shown: int = SHOWN) -> None:
        self._ring: deque[ReplicaEvent] = deque(maxlen=keep)
        self._shown = shown
        self._recent: tuple[ReplicaEvent, ...] = ()

    def add(self, events: Iterable[ReplicaEvent]) -> None:
        added = False
        for event in events:
            self._ring.append(event)
            added = True
        if added:
            newest = list(self._ring)[-self._shown :]
            self._recent = tuple(reversed(newest))

    def recent(self) -> tuple[ReplicaEvent, ...]:
        return self._recent
