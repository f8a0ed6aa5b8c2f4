"""Run passes until there is a verdict: what `reconciler run --once` and `reconciler up -d` wait
for. The verdict comes from the pass's typed outcome, at the first pass that can tell:

- INVALID at once when the config (at the branch head, or in the working tree) is refused,
  unless a pin holds another commit;
- UNHOLDABLE at once when replicas wait for room and nothing is in flight that could make some
  (the host cannot hold this config);
- RUNNING once settled with every application RUNNING;
- UNAVAILABLE when git or the engine is still unreachable at the deadline;
- NOT_CONVERGED at the deadline otherwise, or when it settles without being RUNNING.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

from reconciler.errors import Retry
from reconciler.model import ApplicationStatus, Snapshot
from reconciler.reconcile.core import Reconciler


class Verdict(enum.StrEnum):
    RUNNING = "running"
    INVALID = "invalid"
    UNHOLDABLE = "unholdable"
    UNAVAILABLE = "unavailable"
    NOT_CONVERGED = "not converged"


def verdict_of(reconciler: Reconciler) -> Verdict | None:
    """The verdict the last pass allows, or None: keep going."""
    outcome = reconciler.last_outcome
    if outcome is None:
        return None
    if outcome.source.refused_head is not None and outcome.source.pin is None:
        return Verdict.INVALID  # (pinned, the refused head waits behind the pin: not a verdict)
    if any(f.retry in (Retry.TRANSIENT, Retry.GENERIC) for f in outcome.failures):
        return None  # maybe later; the deadline says UNAVAILABLE
    engine = outcome.engine
    if engine.pending and not engine.busy and outcome.source.preparing is None:
        return Verdict.UNHOLDABLE
    if outcome.source.target is not None and engine.settled:
        ok = all_running(reconciler.snapshot)
        return Verdict.RUNNING if ok else Verdict.NOT_CONVERGED
    return None


def all_running(snap: Snapshot) -> bool:
    return bool(snap.applications) and all(
        a.status == ApplicationStatus.RUNNING for a in snap.applications
    )


def converge(
    reconciler: Reconciler,
    *,
    timeout_s: float,
    interval_s: float,
    on_pass: Callable[[Snapshot], None] = lambda snap: None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict:
    """Passes until a verdict, `stop` is set (NOT_CONVERGED) or `timeout_s` is over."""
    stop = stop or threading.Event()
    deadline = clock() + timeout_s
    while True:
        delay = reconciler.run_pass()
        on_pass(reconciler.snapshot)
        verdict = verdict_of(reconciler)
        if verdict is not None:
            return verdict
        wait = delay if delay is not None else min(interval_s, 1.0)
        if clock() + wait > deadline or stop.is_set():
            return _at_deadline(reconciler)
        if stop.wait(wait):
            return _at_deadline(reconciler)


def _at_deadline(reconciler: Reconciler) -> Verdict:
    outcome = reconciler.last_outcome
    if outcome is not None and any(f.retry is Retry.TRANSIENT for f in outcome.failures):
        return Verdict.UNAVAILABLE
    return Verdict.NOT_CONVERGED
