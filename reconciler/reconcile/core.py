"""One reconcile pass, as a short list of steps: refresh the target -> observe -> plan -> apply ->
decide the retry -> compose the status.

Level-triggered: every pass reads the whole desired state (the target config) and the whole
observed state (the engine), so a pass repairs drift whatever caused it, and a restarted process
adopts what runs. Each step reports what happened as a typed outcome instead of raising; the
retry (`retry.decide`) and the snapshot (`status.compose`) are derived from it, once, at the end,
whatever happened. Passes never overlap (the scheduler guarantees it, and a lock here makes sure).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from reconciler import autoscale, routing, status
from reconciler import events as replica_events
from reconciler import plan as planner
from reconciler.errors import EngineUnavailable, Retry
from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
    AutoscalingStatus,
    Capacity,
    EngineNode,
    FailureRecord,
    ObservedReplica,
    Plan,
    ReplicaState,
    ServeConfig,
    Snapshot,
    StartReplica,
)
from reconciler.outcome import IDLE_ENGINE, EngineOutcome, Failure, PassOutcome, SourceOutcome
from reconciler.ports import Engine
from reconciler.reconcile import retry
from reconciler.reconcile.actions import ActionError, apply_plan
from reconciler.reconcile.autoscaler import Autoscaler
from reconciler.reconcile.target import TargetProvider
from reconciler.records import ReplicaEvent
from reconciler.status import Redactor

log = logging.getLogger(__name__)

FailureMap = dict[tuple[str, str], FailureRecord]
_MOVING = (ReplicaState.STARTING, ReplicaState.STOPPING)


class MetricsSink(Protocol):
    def pass_finished(self, duration_s: float, outcome: str) -> None: ...
    def failure(self, kind: str) -> None: ...
    def poll_error(self) -> None: ...
    def set_applied_commit(self, commit: str) -> None: ...
    def set_replicas(self, counts: Mapping[tuple[str, str, str], int]) -> None: ...
    def set_pending(self, counts: Mapping[tuple[str, str], int]) -> None: ...
    def set_pin(self, commit: str | None, behind: bool) -> None: ...
    def set_autoscaling(self, rows: Mapping[tuple[str, str], AutoscalingStatus]) -> None: ...


@dataclass
class _Memory:
    """Soft state carried between passes. Losing it (a restart) only resets backoff timers."""

    failures: FailureMap = field(default_factory=dict)  # replica start failures, per deployment
    phase: dict[str, ApplicationStatus] = field(default_factory=dict)
    apps: tuple[ApplicationStatusInfo, ...] = ()  # shown as they were while the engine is away
    decision: retry.Decision | None = None  # failure streaks, when to ask the remote again
    source: SourceOutcome | None = None  # shown as it was if a refresh itself breaks
    capacity: Capacity | None = None
    nodes: tuple[EngineNode, ...] = ()  # a multi-node engine's nodes, as last observed
    passes: int = 0
    seen: dict[str, ObservedReplica] | None = None  # the last observation, for its events
    events: replica_events.EventLog = field(default_factory=replica_events.EventLog)


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
        autoscaler: Autoscaler | None = None,
    ) -> None:
        self._target = target
        self._engine = engine
        self._redact = redact
        self._interval = interval_s
        self._metrics = metrics
        self._clock = clock
        self._container_slots = container_slots
        # The autoscaled deployments' targets: soft state fed by the engine's load sampler
        # (wired by the composition root) and read by every pass.
        self.autoscaler = autoscaler or Autoscaler()
        self._memory = _Memory()
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        self.last_outcome: PassOutcome | None = None

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def last_settled(self) -> bool:
        """The last pass left nothing to do (or had nothing to reconcile yet)."""
        o = self.last_outcome
        return o is not None and o.engine.reached and o.engine.settled

    def run_pass(self) -> float | None:
        """Run one pass; return how soon the next should run (None: after one interval)."""
        with self._lock:
            return self._run_pass()

    def _run_pass(self) -> float | None:
        started = self._clock()
        source = self._refresh(started)
        engine = self._reconcile(source, started) if source.target else IDLE_ENGINE
        if source.target is None:
            self._memory.apps = ()
        outcome = PassOutcome(source, engine, started, self._clock() - started)
        m = self._memory
        decision = retry.decide(outcome, m.decision, self._interval, self._clock())
        m.decision, m.source = decision, source
        m.passes += 1
        self._snapshot = status.compose(
            outcome,
            m.apps,
            redact=self._redact,
            passes=m.passes,
            capacity=m.capacity,
            retry=decision.retry.value if decision.retry else None,
            events=m.events.recent(),
            nodes=m.nodes,
        )
        self.last_outcome = outcome
        self._record(outcome, decision)
        return decision.delay_s

    # --- the steps ------------------------------------------------------------------------

    def _refresh(self, now: float) -> SourceOutcome:
        m = self._memory
        poll = m.decision is None or now >= m.decision.poll_source_at
        try:
            source = self._target.refresh(poll=poll)
        except Exception as exc:  # the contract says it never raises; never let it kill us
            log.exception("refreshing the target failed")
            failure = Failure.of(RuntimeError(f"internal error: {exc!r}"), "internal")
            last = m.source or SourceOutcome(None, None, None)
            return replace(last, failure=failure, changed=False, polled=True)
        if source.changed:
            self._memory.phase = {}  # a new deploy starts: Serve's DEPLOYING -> DEPLOY_FAILED
        return source

    def _reconcile(self, source: SourceOutcome, now: float) -> EngineOutcome:
        assert source.target is not None
        config = source.target.config
        try:
            observed = self._engine.observe()
            self._memory.nodes = self._engine.nodes()
            self._memory.capacity = self._engine.capacity()
            return self._converge(config, observed, now, source.target.received_at)
        except EngineUnavailable as exc:
            return EngineOutcome.unreached(Failure.of(exc))
        except Exception as exc:  # never let one pass kill the loop; say what happened
            log.exception("reconcile pass failed")
            failure = Failure(
                "internal", f"internal error: {type(exc).__name__}: {exc}", Retry.GENERIC
            )
            return EngineOutcome.unreached(failure)

    def _converge(
        self, config: ServeConfig, observed: list[ObservedReplica], now: float, received: float
    ) -> EngineOutcome:
        m = self._memory
        config = autoscale.with_targets(config, self.autoscaler.targets(config, observed))
        scaling = self.autoscaler.status()
        failures = planner.next_failures(config, observed, m.failures, now)
        plan = planner.plan(config, observed, failures, now, m.capacity)
        errors = apply_plan(
            self._engine,
            plan,
            config=config,
            observed=observed,
            render_ingress=functools.partial(
                routing.render_ingress,
                threads=routing.ingress_threads(m.capacity.cores if m.capacity else None),
            ),
            container_slots=self._container_slots,
        )
        m.failures = _count_start_errors(config, errors, failures, now)
        m.events.add(replica_events.between(m.seen, observed, now))
        m.events.add(_refused_starts(errors, now))
        m.seen = {r.container_id: r for r in observed}
        deployments = status.deployment_statuses(
            config, observed, m.failures, now, plan.pending, scaling
        )
        m.apps = status.application_statuses(config, deployments, m.phase, received)
        m.phase = {app.name: app.status for app in m.apps}
        if self._metrics:
            self._metrics.set_replicas(_replica_counts(observed))
            self._metrics.set_pending({k: p.count for k, p in plan.pending.items()})
            self._metrics.set_autoscaling(scaling)
        return _engine_outcome(plan, observed, errors, self._engine.settling())

    def _record(self, outcome: PassOutcome, decision: retry.Decision) -> None:
        for failure in outcome.fresh_failures:
            attempt = decision.streaks.get(failure.kind, 1)
            log.warning("%s: %s (%s; attempt %d)", failure.kind, failure.message,
                        failure.retry, attempt)  # fmt: skip
        if self._metrics is None:
            return
        for failure in outcome.fresh_failures:
            self._metrics.failure(failure.kind)
            if failure.kind == "source":
                self._metrics.poll_error()
        source = outcome.source
        if source.target is not None:
            self._metrics.set_applied_commit(source.target.commit)
        pinned = source.pin.commit if source.pin else None
        self._metrics.set_pin(pinned, pinned is not None and source.latest not in (None, pinned))
        self._metrics.pass_finished(outcome.duration_s, outcome.label)


def _engine_outcome(
    plan: Plan,
    observed: Sequence[ObservedReplica],
    errors: Sequence[ActionError],
    settling: str | None = None,
) -> EngineOutcome:
    """`settling`: what the engine says is still coming up (a swarm's ingress on a node)."""
    ingress = next((e.message for e in errors if e.action is None), None)
    return EngineOutcome(
        reached=True,
        ingress_error=ingress,
        settled=plan.settled and not errors and settling is None,
        busy=bool(plan.actions)
        or settling is not None
        or any(r.state in _MOVING for r in observed),
        pending=sum(p.count for p in plan.pending.values()),
        placing=sum(1 for r in observed if r.state is ReplicaState.STARTING and r.waiting),
    )


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


def _refused_starts(errors: Sequence[ActionError], now: float) -> list[ReplicaEvent]:
    events = []
    for e in errors:
        if isinstance(e.action, StartReplica):
            spec, name = e.action.spec, f"{e.action.spec.name}#{e.action.index}"
            events.append(ReplicaEvent(now, spec.app, spec.name, name, "refused", e.message))
    return events


def _replica_counts(observed: Sequence[ObservedReplica]) -> dict[tuple[str, str, str], int]:
    counts: dict[tuple[str, str, str], int] = {}
    for replica in observed:
        key = (replica.app, replica.deployment, replica.state.value)
        counts[key] = counts.get(key, 0) + 1
    return counts
