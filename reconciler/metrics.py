"""Prometheus metrics of the reconciler, in a registry of their own (never the global one, so
two instances in one process, as in tests, do not collide). The only module importing
prometheus_client.

Names: serve_reconciler_passes_total{outcome}, serve_reconciler_pass_duration_seconds,
serve_reconciler_failures_total{kind}, serve_reconciler_poll_errors_total,
serve_reconciler_replicas{app,deployment,state}, serve_reconciler_replicas_pending{app,deployment},
serve_reconciler_applied_commit_info{commit}, serve_reconciler_pinned_commit_info{commit} (no
series while nothing is pinned), serve_reconciler_behind_pin (1 while the branch head waits
behind the pin), serve_reconciler_webhooks_total{result},
serve_reconciler_autoscaling_in_flight{app,deployment} (requests in flight the autoscaler sees,
over its look-back window), serve_reconciler_autoscaling_target_replicas{app,deployment}.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from reconciler.model import AutoscalingStatus

OUTCOMES = ("ok", "invalid", "transient", "error")
FAILURE_KINDS = ("source", "engine", "config", "internal")
WEBHOOK_RESULTS = ("triggered", "ignored", "ping", "rejected", "malformed", "too_large")

# A pass is usually well under a second; a rollout that waits on replicas can take minutes.
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

ReplicaKey = tuple[str, str, str]


class Metrics:
    """What the loop records after each pass; `render()` is what `GET /metrics` serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._replica_keys: set[ReplicaKey] = set()
        self._passes = Counter(
            "serve_reconciler_passes",
            "Reconcile passes, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self._duration = Histogram(
            "serve_reconciler_pass_duration_seconds",
            "Wall time of one reconcile pass.",
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._failures = Counter(
            "serve_reconciler_failures",
            "Failed passes, by kind of failure.",
            ["kind"],
            registry=self.registry,
        )
        self._poll_errors = Counter(
            "serve_reconciler_poll_errors",
            "Polls of the git remote that failed.",
            registry=self.registry,
        )
        self._replicas = Gauge(
            "serve_reconciler_replicas",
            "Replica containers, by application, deployment and state.",
            ["app", "deployment", "state"],
            registry=self.registry,
        )
        self._commit = Gauge(
            "serve_reconciler_applied_commit_info",
            "The applied commit (value 1 on the series of that commit).",
            ["commit"],
            registry=self.registry,
        )
        self._pending = Gauge(
            "serve_reconciler_replicas_pending",
            "Replicas that wait for room on the host (admission), by application and deployment.",
            ["app", "deployment"],
            registry=self.registry,
        )
        self._pending_keys: set[tuple[str, str]] = set()
        self._pinned = Gauge(
            "serve_reconciler_pinned_commit_info",
            "The pinned commit (value 1 on its series; none while the branch is followed).",
            ["commit"],
            registry=self.registry,
        )
        self._behind_pin = Gauge(
            "serve_reconciler_behind_pin",
            "1 while the branch has moved away from the pinned commit (its head waits), else 0.",
            registry=self.registry,
        )
        self._in_flight = Gauge(
            "serve_reconciler_autoscaling_in_flight",
            "Requests in flight (queued at the ingress + running) an autoscaled deployment has, "
            "as its autoscaler aggregates them over look_back_period_s.",
            ["app", "deployment"],
            registry=self.registry,
        )
        self._target = Gauge(
            "serve_reconciler_autoscaling_target_replicas",
            "The replica count the autoscaler holds for an autoscaled deployment.",
            ["app", "deployment"],
            registry=self.registry,
        )
        self._autoscaled: set[tuple[str, str]] = set()
        self._webhooks = Counter(
            "serve_reconciler_webhooks",
            "Webhook requests, by result.",
            ["result"],
            registry=self.registry,
        )
        self._start_series()

    def _start_series(self) -> None:
        # Known label values start at 0, so rate() works from the first failure on.
        for outcome in OUTCOMES:
            self._passes.labels(outcome=outcome)
        for kind in FAILURE_KINDS:
            self._failures.labels(kind=kind)
        for result in WEBHOOK_RESULTS:
            self._webhooks.labels(result=result)

    def pass_finished(self, duration_s: float, outcome: str) -> None:
        """One pass ended with `outcome` (ok, invalid, transient or error)."""
        self._passes.labels(outcome=outcome).inc()
        self._duration.observe(max(0.0, duration_s))

    def failure(self, kind: str) -> None:
        """A pass failed because of `kind` (source, engine, config, internal...)."""
        self._failures.labels(kind=kind).inc()

    def poll_error(self) -> None:
        self._poll_errors.inc()

    def webhook(self, result: str) -> None:
        """A webhook request was answered with `result` (see WEBHOOK_RESULTS)."""
        self._webhooks.labels(result=result).inc()

    def set_applied_commit(self, commit: str) -> None:
        with self._lock:
            self._commit.clear()
            self._commit.labels(commit=commit).set(1)

    def set_pin(self, commit: str | None, behind: bool) -> None:
        with self._lock:
            self._pinned.clear()
            if commit is not None:
                self._pinned.labels(commit=commit).set(1)
            self._behind_pin.set(1 if behind else 0)

    def set_replicas(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        """Replace every replica series: (app, deployment, state) -> count; others are removed."""
        with self._lock:
            for key in self._replica_keys - set(counts):
                self._replicas.remove(*key)
            for (app, deployment, state), count in counts.items():
                self._replicas.labels(app=app, deployment=deployment, state=state).set(count)
            self._replica_keys = set(counts)

    def set_pending(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the pending series: (app, deployment) -> replicas waiting for room."""
        with self._lock:
            for key in self._pending_keys - set(counts):
                self._pending.remove(*key)
            for (app, deployment), count in counts.items():
                self._pending.labels(app=app, deployment=deployment).set(count)
            self._pending_keys = set(counts)

    def set_autoscaling(self, rows: Mapping[tuple[str, str], AutoscalingStatus]) -> None:
        """Replace the autoscaling series: (app, deployment) -> where its autoscaler stands."""
        with self._lock:
            for key in self._autoscaled - set(rows):
                self._in_flight.remove(*key)
                self._target.remove(*key)
            for (app, deployment), row in rows.items():
                self._target.labels(app=app, deployment=deployment).set(row.target_replicas)
                flight = row.in_flight if row.in_flight is not None else float("nan")
                self._in_flight.labels(app=app, deployment=deployment).set(flight)
            self._autoscaled = set(rows)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
