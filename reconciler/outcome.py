"""The typed outcome of one reconcile pass: what happened to the source (the branch and the commit
judged), and what happened on the engine. The retry (reconcile/retry.py) and the status
(status.py) are both derived from it, each in one place. Pure value objects.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from reconciler.errors import Retry, kind_of, retry_of
from reconciler.model import ServeConfig
from reconciler.records import Pin, TimelineEntry


@dataclass(frozen=True)
class Failure:
    """Why a part of the pass could not do its work. `kind` names the part (source, state,
    engine, ingress, internal): each kind backs off on its own."""

    kind: str
    message: str
    retry: Retry

    @classmethod
    def of(cls, error: BaseException, kind: str | None = None) -> Failure:
        return cls(kind or kind_of(error), str(error) or type(error).__name__, retry_of(error))


class Verdict(enum.StrEnum):
    """What became of a commit the loop looked at."""

    APPLIED = "applied"  # it is the target now
    INVALID = "invalid"  # its config is refused: stalled until the branch moves
    UNREADABLE = "error"  # it cannot be read (a damaged tree): stalled too


@dataclass(frozen=True)
class Target:
    """The config being reconciled toward, and the commit it came from."""

    commit: str
    config: ServeConfig
    received_at: float  # Serve's deployment_timestamp: when this commit was first accepted
    label: str = ""  # how messages name it: "commit 0123456789ab" or "the working tree"

    @property
    def name(self) -> str:
        return self.label or f"commit {self.commit[:12]}"


@dataclass(frozen=True)
class Attempt:
    """The newest commit the loop judged, and its verdict (errors for a refused one)."""

    commit: str
    outcome: Verdict
    errors: tuple[str, ...] = ()
    at: float = 0.0
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or f"commit {self.commit[:12]}"


@dataclass(frozen=True)
class Preparing:
    """A commit being turned into a deployable config off the pass (load, fetch, build)."""

    commit: str
    progress: str = ""
    label: str = ""
    pinning: bool = False  # prepared for a pin, not because the branch points at it

    @property
    def name(self) -> str:
        return self.label or f"commit {self.commit[:12]}"


@dataclass(frozen=True)
class SourceOutcome:
    """What the source said on this pass. `latest` is the branch head as last seen (kept when
    the remote cannot be asked); `target` is what runs; `attempt` the newest verdict."""

    target: Target | None
    latest: str | None
    attempt: Attempt | None
    failure: Failure | None = None
    changed: bool = False  # the target changed on this pass: a new deploy starts
    preparing: Preparing | None = None
    polled: bool = True  # the remote was asked this pass (False: its failure is carried over)
    pin: Pin | None = None  # the commit held whatever the branch does (the target then)
    timeline: tuple[TimelineEntry, ...] = ()  # what happened to commits, newest first

    @property
    def refused_head(self) -> Attempt | None:
        """The refused commit the branch points at now, if it does. A refused commit the branch
        has since left (reverted, force-pushed over) is history, not status."""
        a = self.attempt
        if a is None or a.outcome is Verdict.APPLIED or a.commit != self.latest:
            return None
        if self.target is not None and self.target.commit == a.commit:
            return None
        return a


@dataclass(frozen=True)
class EngineOutcome:
    """What the pass did on the engine. `reached` is False when it could not observe."""

    reached: bool
    failure: Failure | None = None  # unreachable engine, or a bug in the pass
    ingress_error: str | None = None  # the ingress could not follow: drains are held back
    settled: bool = False  # nothing left to do: every deployment converged
    busy: bool = False  # actions were taken or replicas are starting / draining
    pending: int = 0  # replicas waiting for room on the host
    placing: int = 0  # started replicas the engine has no node for yet (Swarm)

    @classmethod
    def unreached(cls, failure: Failure) -> EngineOutcome:
        return cls(reached=False, failure=failure)


IDLE_ENGINE = EngineOutcome(reached=True, settled=True)  # nothing to reconcile yet


@dataclass(frozen=True)
class PassOutcome:
    source: SourceOutcome
    engine: EngineOutcome
    at: float
    duration_s: float

    @property
    def failures(self) -> tuple[Failure, ...]:
        return tuple(f for f in (self.source.failure, self.engine.failure) if f is not None)

    @property
    def fresh_failures(self) -> tuple[Failure, ...]:
        """The failures this pass ran into (not the remote's carried over while backing off)."""
        carried = None if self.source.polled else self.source.failure
        return tuple(f for f in self.failures if f is not carried)

    @property
    def label(self) -> str:
        """The pass's outcome for metrics: ok, invalid, transient or error."""
        retries = {f.retry for f in self.failures}
        if Retry.GENERIC in retries:
            return "error"
        if Retry.TRANSIENT in retries:
            return "transient"
        if self.source.refused_head is not None or Retry.STALLED in retries:
            return "invalid"
        return "ok"
