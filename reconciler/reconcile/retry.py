"""The one place the loop decides when to look again, from the typed outcome of a pass.

- A failure that is TRANSIENT (git, the engine, the state directory, a download) or GENERIC
  (a bug) backs off per kind: one poll interval, doubling up to MAX_BACKOFF_S, so a healthy
  remote never resets the backoff of an engine that is down. A failing *source* does not slow
  the engine's work: its backoff only holds back the next poll of the remote.
- WAITING, work in progress: look again soon (a rollout, a drain, a commit being prepared, or
  replicas waiting for room on the host, less often).
- STALLED (an invalid commit, a deleted branch) and settled: the next poll, one interval away.
Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.backoff import backoff_s
from reconciler.errors import Retry
from reconciler.outcome import PassOutcome

REQUEUE_S = 0.5  # a rollout, scale or drain is in progress
PREPARING_S = 1.0  # a commit is being prepared (its end also asks for a pass at once)
ROOM_RECHECK_S = 5.0  # replicas wait for room on the host; nothing else is in flight


@dataclass(frozen=True)
class Decision:
    """When the next pass should run (None: one interval), why, and the failure streaks."""

    delay_s: float | None
    retry: Retry | None  # None: settled, nothing to do until the next poll
    streaks: Mapping[str, int] = field(default_factory=dict)
    poll_source_at: float = 0.0  # don't ask the remote again before this time


def decide(
    outcome: PassOutcome, previous: Decision | None, interval_s: float, now: float
) -> Decision:
    """The next pass's timing from this pass's outcome and the previous decision (its failure
    streaks and when the remote may be asked again)."""
    streaks = previous.streaks if previous else {}
    counts: dict[str, int] = {}
    engine_waits: list[float] = []
    poll_at = 0.0
    for failure in outcome.failures:
        if failure.retry not in (Retry.TRANSIENT, Retry.GENERIC):
            continue
        if failure is outcome.source.failure and not outcome.source.polled:
            # Carried over from the last poll: its streak and its wait stand.
            counts[failure.kind] = streaks.get(failure.kind, 1)
            poll_at = previous.poll_source_at if previous else now
            continue
        counts[failure.kind] = streaks.get(failure.kind, 0) + 1
        wait = backoff_s(interval_s, counts[failure.kind])
        if failure is outcome.source.failure:
            poll_at = now + wait
        else:
            engine_waits.append(wait)
    if engine_waits:
        worst = Retry.GENERIC if _generic(outcome) else Retry.TRANSIENT
        return Decision(min(engine_waits), worst, counts, poll_at)
    waiting = _waiting(outcome)
    if waiting is not None:
        return Decision(waiting, Retry.WAITING, counts, poll_at)
    if poll_at:
        # Only the source fails: the next pass when the remote may be asked again.
        return Decision(max(0.0, poll_at - now), Retry.TRANSIENT, counts, poll_at)
    stalled = outcome.source.refused_head is not None or any(
        f.retry is Retry.STALLED for f in outcome.failures
    )
    return Decision(None, Retry.STALLED if stalled else None, counts, poll_at)


def _generic(outcome: PassOutcome) -> bool:
    return any(f.retry is Retry.GENERIC for f in outcome.failures)


def _waiting(outcome: PassOutcome) -> float | None:
    engine, source = outcome.engine, outcome.source
    if engine.reached and (engine.busy or (not engine.settled and not engine.pending)):
        return REQUEUE_S
    if source.preparing is not None:
        return PREPARING_S
    if engine.pending:
        return ROOM_RECHECK_S
    return None
