"""What the dashboard shows beyond Serve's status, as value objects: the commit timeline (who wrote
a commit, what the loop made of it, what it changed per deployment), the pin, one row per replica
and the recent replica events. Frozen dataclasses only, standard library only; the `Snapshot`
(model.py) carries them, so they sit below it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class CommitInfo:
    """What git says about a commit: its author, when it was written, its subject line."""

    author: str = ""
    authored_at: float = 0.0
    subject: str = ""


@dataclass(frozen=True)
class Change:
    """What a commit did to one deployment against what ran before it: the planner's verdict
    (create, remove, scale, reconfigure, restart) and its reasons (plan.classify)."""

    app: str
    deployment: str
    kind: str
    reasons: tuple[str, ...] = ()


class Event(enum.StrEnum):
    """What a timeline entry records."""

    APPLIED = "applied"  # the branch's commit was accepted and deployed
    INVALID = "invalid"  # refused: its config is invalid (errors at file:line:col)
    ERROR = "error"  # refused: it could not be read
    PINNED = "pinned"  # pinned (or rolled back to): held whatever the branch does
    PIN_REFUSED = "pin-refused"  # a pin asked for an invalid commit: the pin was not taken
    UNPINNED = "unpinned"  # the branch head is followed again


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to a commit, newest first in the timeline."""

    commit: str
    at: float
    event: Event
    info: CommitInfo = CommitInfo()
    errors: tuple[str, ...] = ()  # "file:line:col: message" for a refused commit
    changes: tuple[Change, ...] = ()  # for an applied or pinned one
    message: str = ""  # for a pin: why (e.g. "rollback from commit 0123456789ab")


@dataclass(frozen=True)
class Pin:
    """A commit held whatever the branch does, until unpinned (persisted in the state store)."""

    commit: str
    at: float
    reason: str = ""


@dataclass(frozen=True)
class ReplicaRow:
    """One replica container as the last pass saw it."""

    name: str
    index: int
    version: str
    state: str  # ReplicaState value
    created_at: float
    current: bool  # at the deployment's current version
    error: str = ""  # the user's own error text (failed, unhealthy)


@dataclass(frozen=True)
class ReplicaEvent:
    """Something that happened to a replica between two observations (or a start the engine
    refused), for the dashboard's recent events."""

    at: float
    app: str
    deployment: str
    replica: str
    kind: str  # started, ready, draining, removed, failed, unhealthy, recovered, refused, adopted
    message: str = ""
