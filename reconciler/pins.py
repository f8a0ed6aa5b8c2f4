"""Pin and rollback, the pure part: the answers a pin request gets, and which commit `rollback`
goes back to. The target (reconcile/target.py) decides what runs; this module only names things.

Rollback steps back along the commits the *branch* deployed (the history's `applied` entries,
each commit at its latest deploy), from the one running now: after A, B, C were deployed, a
rollback from C pins B, and a second one (from B) pins A. A pin is not a deploy of the branch,
so rolling back never bounces between two pins.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.model import HistoryEntry

APPLIED = "applied"


class PinState(enum.StrEnum):
    PINNED = "pinned"  # the commit runs and is held
    PREPARING = "preparing"  # being read, validated and prepared; not held yet
    REFUSED = "refused"  # its config is invalid (or unreadable): the pin was not taken
    UNKNOWN = "unknown"  # no such commit on the branch
    NO_PREVIOUS = "no-previous"  # rollback: no earlier applied commit to go back to
    SUPERSEDED = "superseded"  # another pin or an unpin came first
    UNPINNED = "unpinned"  # the branch head is followed again
    NOT_PINNED = "not-pinned"  # unpin with nothing pinned


@dataclass(frozen=True)
class PinAnswer:
    """What became of one pin, unpin or rollback request."""

    state: PinState
    commit: str | None
    message: str
    errors: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.state is not PinState.PREPARING


def rollback_choice(history: Sequence[HistoryEntry], current: str | None) -> str | None:
    """The commit to roll back to from `current`: the one the branch deployed before it (see the
    module docstring). `history` is newest first. None when there is none."""
    order: list[str] = []  # distinct commits by their latest deploy, newest first
    for entry in history:
        if entry.outcome == APPLIED and entry.commit not in order:
            order.append(entry.commit)
    if current is None:
        return order[0] if order else None
    if current not in order:
        return next(iter(order), None)
    at = order.index(current)
    return order[at + 1] if at + 1 < len(order) else None


def short(commit: str | None) -> str:
    return (commit or "")[:12]
