"""One reconcile pass: refresh the target -> observe -> plan -> apply -> summarise.

Level-triggered: every pass reads the whole desired state (the target config) and the whole
observed state (the engine), so a pass repairs drift whatever caused it, and a restarted process
adopts what runs. The snapshot is written once, at the end, whatever happened. Passes never
overlap (the scheduler guarantees it, and a lock here makes sure).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from reconciler import plan as planner
from reconciler import routing, status
from reconciler.errors import EngineUnavailable
from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
    FailureRecord,
    ObservedReplica,
    ReplicaState,
    ServeConfig,
    Snapshot,
    StartReplica,
)
from reconciler.ports import Engine
from reconciler.reconcile.actions import ActionError, apply_plan
from reconciler.reconcile.summary import Redactor, summarise
from reconciler.reconcile.target import TargetProvider, TargetView

log = logging.getLogger(__name__)

REQUEUE_S = 0.5  # while a rollout, scale or drain is in progress
MAX_BACKOFF_S = 60.0

FailureMap = dict[tuple[str, str], FailureRecord]


class MetricsSink(Protocol):
    def pass_finished(self, duration_s: float, outcome: str) -> None: ...
    def failure(self, kind: str) -> None: ...
    def poll_error(self) -> None: ...
    def set_applied_commit(self, commit: str) -> None: ...
    def set_replicas(self, counts: Mapping[tuple[str, str, str], int]) -> None: ...


@dataclass
class _Memory:
    """Soft state carried between passes. Losing it (a restart) only resets backoff timers."""

    failures: FailureMap = field(default_factory=dict)
    phase: dict[str, ApplicationStatus] = field(default_factory=dict)
    apps: tuple[ApplicationStatusInfo, ...] = ()
    # Consecutive failures per kind ("source", "engine"): each backs off on its own, so a
    # healthy git remote does not reset the backoff of an engine that is down.
    transient_failures: dict[str, int] = field(default_factory=dict)
    passes: int = 0
    view: TargetView | None = None  # the last target seen, shown if a refresh itself fails
    ingress_error: str | None = None  # the last pass could not update the ingress


class Reconciler:
    def __init__(
        self,
        *,
        target: TargetProvider,
        engine: Engine,
        redact: Redactor,
        interval_s: float,
        metrics: MetricsSink | None = None,
        clock: Callable[[], float] = time.time,
        container_slots: int | None = None,
    ) -> None:
        self._container_slots = container_slots
        self._target = target
        self._engine = engine
        self._redact = redact
        self._interval = interval_s
        self._metrics = metrics
        self._clock = clock
        self._memory = _Memory()
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        self.last_settled = False

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def run_pass(self) -> float | None:
        """Run one pass; return how soon the next should run (None: after one interval)."""
        with self._lock:
            return self._run_pass()

    def _run_pass(self) -> float | None:
        started = self._clock()
        view: TargetView | None = None
        engine_error: str | None = None
        outcome, delay = "ok", None
        try:
            view = self._target.refresh()
            self._memory.view = view
            if view.attempt is not None and view.attempt.outcome == "invalid":
                outcome = "invalid"
            delay = self._note_source(view)
            config = view.target.config if view.target else None
            if view.changed:
                self._memory.phase = {}
            if config is not None:
                delay = _sooner(delay, self._converge(config, started, view))
            else:
                self.last_settled = True
        except EngineUnavailable as exc:
            outcome, engine_error = "transient", str(exc)
            delay = self._transient_backoff("engine", str(exc))
        except Exception as exc:  # never let one pass kill the loop; say what happened
            log.exception("reconcile pass failed")
            outcome, engine_error = "error", f"internal error: {type(exc).__name__}: {exc}"
            self._count("internal")
        finally:
            # A failed refresh must not make /status forget what is applied and running.
            engine_error = engine_error or self._memory.ingress_error
            self._finish(view or self._memory.view, engine_error, started, outcome)
        return delay

    def _note_source(self, view: TargetView) -> float | None:
        if view.source_error is None:
            self._memory.transient_failures.pop("source", None)
            return None
        if self._metrics:
            self._metrics.poll_error()
        return self._transient_backoff("source", view.source_error)

    def _transient_backoff(self, kind: str, message: str) -> float:
        self._count(kind)
        n = self._memory.transient_failures.get(kind, 0) + 1
        self._memory.transient_failures[kind] = n
        log.warning("%s unavailable (attempt %d): %s", kind, n, message)
        return transient_backoff_s(self._interval, n)

    def _converge(self, config: ServeConfig, now: float, view: TargetView) -> float | None:
        observed = self._engine.observe()
        self._memory.transient_failures.pop("engine", None)
        failures = planner.next_failures(config, observed, self._memory.failures, now)
        plan = planner.plan(config, observed, failures, now)
        errors = apply_plan(
            self._engine,
            plan,
            config=config,
            observed=observed,
            render_ingress=routing.render_haproxy,
            container_slots=self._container_slots,
        )
        failures = _count_start_errors(config, errors, failures, now)
        self._memory.failures = failures
        self._memory.ingress_error = next((e.message for e in errors if e.action is None), None)
        self._summarise_status(config, observed, failures, now, view)
        self.last_settled = plan.settled and not errors
        return None if self.last_settled else REQUEUE_S

    def _summarise_status(
        self,
        config: ServeConfig,
        observed: Sequence[ObservedReplica],
        failures: FailureMap,
        now: float,
        view: TargetView,
    ) -> None:
        deployments = status.deployment_statuses(config, observed, failures, now)
        received = view.target.received_at if view.target else 0.0
        apps = status.application_statuses(config, deployments, self._memory.phase, received)
        self._memory.phase = {app.name: app.status for app in apps}
        self._memory.apps = apps
        if self._metrics:
            self._metrics.set_replicas(_replica_counts(observed))
            if view.target:
                self._metrics.set_applied_commit(view.target.commit)

    def _finish(
        self, view: TargetView | None, engine_error: str | None, started: float, outcome: str
    ) -> None:
        self._memory.passes += 1
        duration = self._clock() - started
        self._snapshot = summarise(
            view=view,
            apps=self._memory.apps,
            redact=self._redact,
            engine_error=engine_error,
            pass_at=started,
            duration_s=duration,
            passes=self._memory.passes,
        )
        if self._metrics:
            self._metrics.pass_finished(duration, outcome)

    def _count(self, kind: str) -> None:
        if self._metrics:
            self._metrics.failure(kind)


def transient_backoff_s(interval_s: float, attempt: int) -> float:
    """The wait after the `attempt`th failure in a row of git or the engine: one interval, then
    doubling, up to max(interval, MAX_BACKOFF_S), for any count (2.0 ** 1024 would overflow)."""
    return min(interval_s * 2.0 ** min(max(attempt, 1) - 1, 32), max(interval_s, MAX_BACKOFF_S))


def _sooner(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _count_start_errors(
    config: ServeConfig, errors: Sequence[ActionError], failures: FailureMap, now: float
) -> FailureMap:
    """A start the engine refused (unknown image, bad option) counts as a replica that failed
    to start, so it gets the same backoff and the same UNHEALTHY message."""
    refused = [
        ObservedReplica(
            container_id="",
            name=f"{e.action.spec.app}/{e.action.spec.name}#{e.action.index}",
            app=e.action.spec.app,
            deployment=e.action.spec.name,
            index=e.action.index,
            version=e.action.spec.version,
            state=ReplicaState.FAILED,
            error=e.message,
        )
        for e in errors
        if isinstance(e.action, StartReplica)
    ]
    if not refused:
        return failures
    return planner.next_failures(config, refused, failures, now)


def _replica_counts(observed: Sequence[ObservedReplica]) -> dict[tuple[str, str, str], int]:
    counts: dict[tuple[str, str, str], int] = {}
    for replica in observed:
        key = (replica.app, replica.deployment, replica.state.value)
        counts[key] = counts.get(key, 0) + 1
    return counts
