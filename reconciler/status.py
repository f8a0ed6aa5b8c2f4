"""Status derivation: Serve's deployment and application statuses (ray-serve.md 2.2 and 2.4, the
2.7+ rules) computed from the observed replicas and the failure records, never assumed.
Pure: no I/O, standard library only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
    DeploymentSpec,
    DeploymentStatus,
    DeploymentStatusInfo,
    FailureRecord,
    ObservedReplica,
    ReplicaState,
    ServeConfig,
)

Key = tuple[str, str]

UNHEALTHY_THRESHOLD_FACTOR = 3
MAX_UNHEALTHY_THRESHOLD = 100  # Serve's MAX_DEPLOYMENT_CONSTRUCTOR_RETRY_COUNT
HEALTH_CHECK_FAILED = "A replica's health check failed; it is being replaced."

_LIVE = (ReplicaState.STARTING, ReplicaState.RUNNING)
# An app that never got to RUNNING fails its deploy; one that was running becomes UNHEALTHY.
_STILL_DEPLOYING = (
    None,
    ApplicationStatus.NOT_STARTED,
    ApplicationStatus.DEPLOYING,
    ApplicationStatus.DEPLOY_FAILED,
)


def failure_threshold(target: int) -> int:
    """Start failures in a row after which a deployment is UNHEALTHY: min(100, 3 x replicas)."""
    return max(1, min(MAX_UNHEALTHY_THRESHOLD, UNHEALTHY_THRESHOLD_FACTOR * target))


def _replicas(n: int) -> str:
    return f"{n} replica" if n == 1 else f"{n} replicas"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _retry_text(record: FailureRecord, now: float) -> str:
    wait = math.ceil(record.retry_at - now)
    return f"Retrying in {wait}s." if wait > 0 else "Retrying now."


def _failed_message(record: FailureRecord, now: float) -> str:
    return (
        f"The deployment failed to start {record.count} times in a row. "
        f"Last error: {_sentence(record.last_error)} {_retry_text(record, now)}"
    )


def _failure_note(record: FailureRecord, threshold: int) -> str:
    if record.count < threshold:
        attempts = f"{record.count} of {threshold} attempts before UNHEALTHY"
        return _sentence(f"Replica failed to start ({attempts}): {record.last_error}")
    return _sentence(f"Replica failed to start {record.count} times: {record.last_error}")


def _progress_parts(spec: DeploymentSpec, replicas: Sequence[ObservedReplica]) -> list[str]:
    """What is happening, in words: one part per kind of work in flight."""
    target = spec.num_replicas
    live = [r for r in replicas if r.state in _LIVE]
    current = [r for r in live if r.version == spec.version]
    running = [r for r in current if r.state is ReplicaState.RUNNING]
    parts = []
    if len(current) < len(live):
        parts.append(f"rolling update: {len(running)} of {target} replicas at the new version")
    elif len(current) > target:
        parts.append(f"scaling from {len(current)} to {_replicas(target)}")
    elif len(running) < target:
        parts.append(f"starting: {len(running)} of {_replicas(target)} healthy")
    unsynced = sum(1 for r in running if r.user_config_hash != spec.user_config_hash)
    counts = Counter(r.state for r in replicas)
    gone = counts[ReplicaState.FAILED] + counts[ReplicaState.STALE]
    for n, text in (
        (unsynced, "reconfiguring {}"),
        (counts[ReplicaState.UNHEALTHY], "replacing {} that failed health checks"),
        (gone, "replacing {} that exited"),
        (counts[ReplicaState.STOPPING], "draining {}"),
    ):
        if n:
            parts.append(text.format(_replicas(n)))
    return parts


def _updating_message(
    spec: DeploymentSpec, replicas: Sequence[ObservedReplica], record: FailureRecord | None
) -> str:
    progress = "; ".join(_progress_parts(spec, replicas)) or "updating"
    progress = progress[0].upper() + progress[1:]
    if record is None:
        return progress
    return f"{_failure_note(record, failure_threshold(spec.num_replicas))} {progress}"


def _health_message(sick: Sequence[ObservedReplica]) -> str:
    """The generic sentence plus the replica's own words (its check_health() error, or what
    the probe saw), so the user learns why without reading container logs."""
    detail = next((r.error for r in sick if r.error), None)
    return (
        f"{HEALTH_CHECK_FAILED} Last health check: {_sentence(detail)}"
        if detail
        else (HEALTH_CHECK_FAILED)
    )


def deployment_status(
    spec: DeploymentSpec,
    replicas: Sequence[ObservedReplica],
    record: FailureRecord | None,
    now: float,
) -> DeploymentStatusInfo:
    """The status of one deployment from its observed replicas and its failure record."""
    if record is not None and record.version != spec.version:
        record = None
    running = [r for r in replicas if r.state is ReplicaState.RUNNING and r.version == spec.version]
    in_sync = [r for r in running if r.user_config_hash == spec.user_config_hash]
    states = tuple(sorted(Counter(r.state.value for r in replicas).items()))

    def info(status: DeploymentStatus, message: str) -> DeploymentStatusInfo:
        return DeploymentStatusInfo(spec.name, status, message, spec.num_replicas, states)

    if len(in_sync) == spec.num_replicas == len(replicas):
        return info(DeploymentStatus.HEALTHY, "")
    threshold = failure_threshold(spec.num_replicas)
    if record is not None and record.count >= threshold and not running:
        return info(DeploymentStatus.UNHEALTHY, _failed_message(record, now))
    sick = [r for r in replicas if r.state is ReplicaState.UNHEALTHY and r.version == spec.version]
    if sick:
        return info(DeploymentStatus.UNHEALTHY, _health_message(sick))
    return info(DeploymentStatus.UPDATING, _updating_message(spec, replicas, record))


def deployment_statuses(
    config: ServeConfig,
    observed: Sequence[ObservedReplica],
    failures: Mapping[Key, FailureRecord],
    now: float,
) -> dict[Key, DeploymentStatusInfo]:
    """Every deployment of the config, in config order, keyed by (app, deployment)."""
    groups: dict[Key, list[ObservedReplica]] = {}
    for replica in observed:
        groups.setdefault(replica.key, []).append(replica)
    return {
        spec.key: deployment_status(spec, groups.get(spec.key, []), failures.get(spec.key), now)
        for spec in config.deployments()
    }


def _unhealthy_message(unhealthy: Sequence[DeploymentStatusInfo]) -> str:
    names = [d.name for d in unhealthy]
    details = [f"{d.name}: {d.message}" for d in unhealthy if d.message]
    return "\n".join([f"The deployments {names} are UNHEALTHY.", *details])


def application_status(
    deployments: Sequence[DeploymentStatusInfo],
    previous: ApplicationStatus | None,
) -> tuple[ApplicationStatus, str]:
    """Serve 2.7+: all HEALTHY is RUNNING; an UNHEALTHY deployment fails the deploy if the app
    never got to RUNNING, else makes it UNHEALTHY; anything else is DEPLOYING."""
    if all(d.status is DeploymentStatus.HEALTHY for d in deployments):
        return ApplicationStatus.RUNNING, ""
    unhealthy = [d for d in deployments if d.status is DeploymentStatus.UNHEALTHY]
    if not unhealthy:
        return ApplicationStatus.DEPLOYING, ""
    if previous in _STILL_DEPLOYING:
        return ApplicationStatus.DEPLOY_FAILED, _unhealthy_message(unhealthy)
    return ApplicationStatus.UNHEALTHY, _unhealthy_message(unhealthy)


def _no_status_yet(spec: DeploymentSpec) -> DeploymentStatusInfo:
    return DeploymentStatusInfo(
        spec.name, DeploymentStatus.UPDATING, "Waiting for the first observation", spec.num_replicas
    )


def application_statuses(
    config: ServeConfig,
    deployments: Mapping[Key, DeploymentStatusInfo],
    previous: Mapping[str, ApplicationStatus],
    deployment_timestamp: float,
) -> tuple[ApplicationStatusInfo, ...]:
    """One entry per application of the config, in config order. `previous` holds each app's
    status from the last pass (absent for a new app)."""
    result = []
    for app in config.applications:
        infos = tuple(deployments.get(d.key) or _no_status_yet(d) for d in app.deployments)
        status, message = application_status(infos, previous.get(app.name))
        result.append(
            ApplicationStatusInfo(
                name=app.name,
                status=status,
                message=message,
                deployment_timestamp=deployment_timestamp,
                route_prefix=app.route_prefix,
                deployments=infos,
            )
        )
    return tuple(result)
