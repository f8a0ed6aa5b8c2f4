"""The JSON bodies of the API, built from a `Snapshot` by pure functions (no Flask, no I/O).

`/status` keeps the shapes Serve users know: for a single application the seed's
`{name, app_status{status, message, deployment_timestamp}, deployment_statuses[{name, status,
message}]}`; for several, one such entry per application under `applications`. Everything else
(commits, errors, replica counts) is an extra field beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
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
    return {
        "name": deployment.name,
        "status": str(deployment.status),
        "message": deployment.message,
        "replicas": replicas,
    }


def extras(snapshot: Snapshot) -> JSONObject:
    """The fields beside Serve's: what is applied, what was tried, and what is failing."""
    return {
        "applied_commit": snapshot.applied_commit,
        "latest_commit": snapshot.latest_commit,
        "attempted_commit": snapshot.attempted_commit,
        "attempt_outcome": snapshot.attempt_outcome,
        "errors": list(snapshot.attempt_errors),
        "source_error": snapshot.source_error,
        "engine_error": snapshot.engine_error,
        "last_pass_at": snapshot.last_pass_at,
        "last_pass_duration_s": snapshot.last_pass_duration_s,
        "passes": snapshot.passes,
    }


def not_applied_body(snapshot: Snapshot) -> JSONObject:
    """The 404 of `/config` before the first deploy, with what was tried so far."""
    return {
        "error": "no config has been applied yet",
        "attempted_commit": snapshot.attempted_commit,
        "attempt_outcome": snapshot.attempt_outcome,
        "errors": list(snapshot.attempt_errors),
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
