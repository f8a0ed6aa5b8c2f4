"""The JSON bodies of the API, built from a `Snapshot` by pure functions (no Flask, no I/O).

`/status` keeps the shapes Serve users know: for a single application the seed's
`{name, app_status{status, message, deployment_timestamp}, deployment_statuses[{name, status,
message}]}`; for several, one such entry per application under `applications`. Everything else
(commits, errors, replica counts) is an extra field beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
    AutoscalingStatus,
    Capacity,
    DeploymentStatusInfo,
    HistoryEntry,
    Snapshot,
)

JSONObject = dict[str, Any]

NOT_STARTED = ApplicationStatusInfo(name="", status=ApplicationStatus.NOT_STARTED)


def status_body(snapshot: Snapshot) -> JSONObject:
    """The `/status` body: single-application shape unless the applied config is multi-app."""
    if snapshot.shape == "multi":
        apps = [application_entry(app, with_route=True) for app in snapshot.applications]
        return {"applications": apps, **extras(snapshot)}
    app = snapshot.applications[0] if snapshot.applications else NOT_STARTED
    return {**application_entry(app, with_route=False), **extras(snapshot)}


def application_entry(app: ApplicationStatusInfo, *, with_route: bool) -> JSONObject:
    entry: JSONObject = {"name": app.name}
    if with_route:
        entry["route_prefix"] = app.route_prefix
    entry["app_status"] = {
        "status": str(app.status),
        "message": app.message,
        "deployment_timestamp": app.deployment_timestamp,
    }
    entry["deployment_statuses"] = [deployment_entry(d) for d in app.deployments]
    return entry


def deployment_entry(deployment: DeploymentStatusInfo) -> JSONObject:
    replicas: dict[str, int] = {"target": deployment.target_replicas}
    replicas.update(deployment.replica_states)
    if deployment.pending_replicas:
        replicas["PENDING"] = deployment.pending_replicas
    entry: JSONObject = {
        "name": deployment.name,
        "status": str(deployment.status),
        "message": deployment.message,
        "replicas": replicas,
    }
    if deployment.autoscaling is not None:
        entry["autoscaling"] = autoscaling_body(deployment.autoscaling)
    return entry


def autoscaling_body(a: AutoscalingStatus) -> JSONObject:
    return {
        "min_replicas": a.min_replicas,
        "max_replicas": a.max_replicas,
        "target_replicas": a.target_replicas,
        "in_flight": None if a.in_flight is None else round(a.in_flight, 3),
        "target_ongoing_requests": a.target_ongoing_requests,
        "last_decision": a.decision,
        "last_decision_at": a.decided_at,
    }


def extras(snapshot: Snapshot) -> JSONObject:
    """The fields beside Serve's: what is applied, what was tried, what is failing, and the
    room the host has."""
    commits, loop = snapshot.commits, snapshot.loop
    body: JSONObject = {
        "applied_commit": commits.applied,
        "latest_commit": commits.latest,
        "attempted_commit": commits.attempted,
        "attempt_outcome": commits.outcome,
        "errors": list(commits.errors),
        "warnings": list(commits.warnings),
        "preparing_commit": commits.preparing,
        "preparing": commits.progress or None,
        "pinned_commit": commits.pinned,
        "pin_reason": commits.pin_reason if commits.pinned else None,
        "waiting_behind_pin": commits.behind_pin,
        "source_error": loop.source_error,
        "engine_error": loop.engine_error,
        "retry": loop.retry,
        "pending_replicas": snapshot.pending_replicas,
        "capacity": capacity_body(snapshot.capacity),
        "nodes": [asdict(node) for node in snapshot.nodes],
        "last_pass_at": loop.last_pass_at,
        "last_pass_duration_s": loop.last_pass_duration_s,
        "passes": loop.passes,
    }
    return body


def capacity_body(capacity: Capacity | None) -> JSONObject | None:
    if capacity is None:
        return None
    return {
        "cores": capacity.cores,
        "cpus": capacity.cpus,
        "memory": capacity.memory,
        "gpus": capacity.gpus,
        "resources": dict(capacity.custom),
        "max_replicas": capacity.max_replicas,
    }


def not_applied_body(snapshot: Snapshot) -> JSONObject:
    """The 404 of `/config` before the first deploy, with what was tried so far."""
    return {
        "error": "no config has been applied yet",
        "attempted_commit": snapshot.commits.attempted,
        "attempt_outcome": snapshot.commits.outcome,
        "errors": list(snapshot.commits.errors),
    }


def plain(value: Any) -> Any:
    """A deep copy of `value` made of dicts and lists only, as JSON and YAML encoders want."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def history_body(entries: list[HistoryEntry]) -> list[JSONObject]:
    """Recent deploys, newest first (a stable sort keeps the caller's order among equal times)."""
    ordered = sorted(entries, key=lambda e: e.received_at, reverse=True)
    return [
        {
            "commit": e.commit,
            "received_at": e.received_at,
            "outcome": e.outcome,
            "message": e.message,
        }
        for e in ordered
    ]
