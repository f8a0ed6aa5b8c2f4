"""The status, composed in one place: Serve's deployment and application statuses (ray-serve.md
2.2 and 2.4, the 2.7+ rules) from the pass's deployment views, and the whole `Snapshot` the API
serves from the pass's outcome. Pure: no I/O, standard library only.

The rules that are ours rather than Serve's:
- a commit whose config is invalid is never applied; while the branch points at it, every
  application says DEPLOY_FAILED with that commit and its errors, although the last good commit
  keeps running (and its deployments report their live state). Once the branch leaves it
  (reverted, fixed), the status describes the branch as it is; the refusal stays in /history;
- replicas the host has no room for keep their deployment UPDATING, saying what each replica
  asks for and what is free (Serve's "taken more than 30s to be scheduled" message);
- while a new commit is being prepared (read, fetched, built) the applications say DEPLOYING,
  naming it and what its preparation is doing;
- while a commit is pinned, the applications report their live state with a message saying so,
  and, when the branch has moved on, that its head waits behind the pin (a refused head does not
  make them DEPLOY_FAILED: what runs is what the user asked for);
- an autoscaled deployment whose replicas follow a decision of the autoscaler (and nothing
  else is in progress) says UPSCALING or DOWNSCALING with the decision, and its application
  stays RUNNING (Serve 2.9+'s ranking: autoscaling ranks with HEALTHY); a config change that
  scales says UPDATING and its application DEPLOYING, as Serve ranks config-caused scaling.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from reconciler import admission
from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
    AutoscalingStatus,
    Capacity,
    CommitStatus,
    DeploymentSpec,
    DeploymentStatus,
    DeploymentStatusInfo,
    EngineNode,
    FailureRecord,
    JSONValue,
    LoopStatus,
    ObservedReplica,
    Pending,
    ReplicaState,
    ServeConfig,
    Snapshot,
)
from reconciler.outcome import Attempt, PassOutcome, Preparing, SourceOutcome, Target, Verdict
from reconciler.records import ReplicaEvent, ReplicaRow
from reconciler.view import DeploymentView, views

Key = tuple[str, str]
Redactor = Callable[[ServeConfig], Mapping[str, JSONValue]]

UNHEALTHY_THRESHOLD_FACTOR = 3
MAX_UNHEALTHY_THRESHOLD = 100  # Serve's MAX_DEPLOYMENT_CONSTRUCTOR_RETRY_COUNT
HEALTH_CHECK_FAILED = "A replica's health check failed; it is being replaced."
MAX_ERRORS_IN_MESSAGE = 20

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


# --- one deployment ----------------------------------------------------------------------------


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


def pending_message(pending: Pending, target: int) -> str:
    """Serve's kind of message for replicas that cannot be scheduled: what each asks for and
    what the host has left."""
    c = pending.capacity
    need = admission.describe(pending.demand)
    head = f"{pending.count} of {_replicas(target)} cannot start: the host has no room for them."
    if admission.Budget(c, (), {}).never_fits(pending.demand):
        why = (
            f"Each replica asks for {need}, more than the whole host has "
            f"({admission.describe_capacity(c)})."
        )
    elif pending.replicas_free <= 0:
        why = f"The instance runs its limit of {c.max_replicas} replicas (--max-replicas)."
    else:
        why = (
            f"Resources required for each replica: {need}; available: "
            f"{admission.describe(pending.free)} of {admission.describe_capacity(c)} "
            f"({c.cores:g} cores x overcommit {c.cpus / c.cores if c.cores else 0:g})."
        )
    hint = " Lower num_replicas or the replicas' num_cpus/memory, or give the reconciler more room."
    return f"{head} {why}{hint}"


# Serve's SERVE_SLOW_STARTUP_WARNING_S: a replica still starting after this long is said to be slow.
SLOW_STARTUP_S = 30.0


def _progress_parts(view: DeploymentView, now: float) -> list[str]:
    """What is happening, in words: one part per kind of work in flight."""
    target = view.target
    parts = []
    if view.old:
        parts.append(f"rolling update: {len(view.running)} of {target} replicas at the new version")
    elif len(view.current) > target:
        parts.append(f"scaling from {len(view.current)} to {_replicas(target)}")
    elif len(view.running) < target:
        parts.append(f"starting: {len(view.running)} of {_replicas(target)} healthy")
    unsynced = len(view.running) - len(view.in_sync)
    for n, text in (
        (unsynced, "reconfiguring {}"),
        (view.count(ReplicaState.UNHEALTHY), "replacing {} that failed health checks"),
        (view.count(ReplicaState.FAILED, ReplicaState.STALE), "replacing {} that exited"),
        (view.count(ReplicaState.STOPPING), "draining {}"),
    ):
        if n:
            parts.append(text.format(_replicas(n)))
    if view.waiting:
        parts.append(_waiting_part(view.waiting))
    slow = [
        r
        for r in view.replicas
        if r.state is ReplicaState.STARTING
        and not r.waiting
        and r.created_at
        and now - r.created_at > SLOW_STARTUP_S
    ]
    if slow:
        have = "has" if len(slow) == 1 else "have"
        parts.append(
            f"{_replicas(len(slow))} {have} taken more than {SLOW_STARTUP_S:g}s to initialize "
            "(a slow __init__ or reconfigure?)"
        )
    return parts


def _waiting_part(waiting: Sequence[ObservedReplica]) -> str:
    """Replicas the engine has no node for, and why in its words (the distinct reasons)."""
    reasons = list(dict.fromkeys(r.waiting for r in waiting if r.waiting))
    verb = "waits" if len(waiting) == 1 else "wait"
    return f"{_replicas(len(waiting))} {verb} for a node ({'; '.join(reasons[:3])})"


def _updating_message(view: DeploymentView, pending: Pending | None, now: float) -> str:
    progress = "; ".join(_progress_parts(view, now)) or "updating"
    parts = [progress[0].upper() + progress[1:]]
    if view.failure is not None:
        parts.insert(0, _failure_note(view.failure, failure_threshold(view.target)))
    if pending is not None:
        parts[-1] = _sentence(parts[-1])
        parts.append(pending_message(pending, view.target))
    return " ".join(parts)


def _health_message(sick: Sequence[ObservedReplica]) -> str:
    """The generic sentence plus the replica's own words (its check_health() error, or what
    the probe saw), so the user learns why without reading container logs."""
    detail = next((r.error for r in sick if r.error), None)
    if detail:
        return f"{HEALTH_CHECK_FAILED} Last health check: {_sentence(detail)}"
    return HEALTH_CHECK_FAILED


# Autoscaling in progress ranks with HEALTHY (the application stays RUNNING).
SETTLED = (DeploymentStatus.HEALTHY, DeploymentStatus.UPSCALING, DeploymentStatus.DOWNSCALING)


def deployment_status(
    view: DeploymentView,
    now: float,
    pending: Pending | None = None,
    scaling: AutoscalingStatus | None = None,
) -> DeploymentStatusInfo:
    """The status of one deployment from its view (and the replicas that wait for room, and
    where its autoscaler stands)."""
    # A replica the engine has no node for counts as PENDING, as one the host has no room for.
    placing = {r.container_id for r in view.waiting}
    counted = (r for r in view.replicas if r.container_id not in placing)
    states = tuple(sorted(Counter(r.state.value for r in counted).items()))
    waiting = (pending.count if pending else 0) + len(placing)

    def info(status: DeploymentStatus, message: str) -> DeploymentStatusInfo:
        return DeploymentStatusInfo(
            view.spec.name,
            status,
            message,
            view.target,
            states,
            waiting,
            scaling,
            replicas=_rows(view),
            version=view.spec.version,
            image=view.spec.image,
            start_failures=view.failure.count if view.failure else 0,
        )

    if view.converged:
        return info(DeploymentStatus.HEALTHY, "")
    record = view.failure
    if record is not None and record.count >= failure_threshold(view.target) and not view.running:
        return info(DeploymentStatus.UNHEALTHY, _failed_message(record, now))
    if view.sick:
        return info(DeploymentStatus.UNHEALTHY, _health_message(view.sick))
    if scaling is not None and _autoscaling_only(view, scaling):
        up = DeploymentStatus.UPSCALING if scaling.upscale else DeploymentStatus.DOWNSCALING
        return info(up, _scaling_message(view, scaling, pending, now))
    return info(DeploymentStatus.UPDATING, _updating_message(view, pending, now))


def _rows(view: DeploymentView) -> tuple[ReplicaRow, ...]:
    """One row per replica for the dashboard (the view has them in index order)."""
    version = view.spec.version
    return tuple(
        ReplicaRow(
            r.name,
            r.index,
            r.version,
            r.state.value,
            r.created_at,
            r.version == version,
            r.error or "",
        )
        for r in view.replicas
    )


def _autoscaling_only(view: DeploymentView, scaling: AutoscalingStatus) -> bool:
    """The only work in progress is following the autoscaler: no rollout, no reconfigure, no
    replica failing or replaced."""
    return (
        scaling.by_load
        and not view.old
        and view.failure is None
        and len(view.in_sync) == len(view.running)
        and not view.count(ReplicaState.FAILED, ReplicaState.STALE, ReplicaState.UNHEALTHY)
    )


def _scaling_message(
    view: DeploymentView, scaling: AutoscalingStatus, pending: Pending | None, now: float
) -> str:
    decision = scaling.decision[:1].upper() + scaling.decision[1:]
    parts = [_sentence(decision)]
    progress = "; ".join(_progress_parts(view, now))
    if progress:
        parts.append(_sentence(progress[0].upper() + progress[1:]))
    if pending is not None:
        parts.append(pending_message(pending, view.target))
    return " ".join(parts)


def deployment_statuses(
    config: ServeConfig,
    observed: Sequence[ObservedReplica],
    failures: Mapping[Key, FailureRecord],
    now: float,
    pending: Mapping[Key, Pending] | None = None,
    scaling: Mapping[Key, AutoscalingStatus] | None = None,
) -> dict[Key, DeploymentStatusInfo]:
    """Every deployment of the config, in config order, keyed by (app, deployment)."""
    waiting, autoscaled = pending or {}, scaling or {}
    return {
        key: deployment_status(view, now, waiting.get(key), autoscaled.get(key))
        for key, view in views(config, observed, failures).items()
    }


# --- applications ------------------------------------------------------------------------------


def _unhealthy_message(unhealthy: Sequence[DeploymentStatusInfo]) -> str:
    names = [d.name for d in unhealthy]
    details = [f"{d.name}: {d.message}" for d in unhealthy if d.message]
    return "\n".join([f"The deployments {names} are UNHEALTHY.", *details])


def application_status(
    deployments: Sequence[DeploymentStatusInfo],
    previous: ApplicationStatus | None,
) -> tuple[ApplicationStatus, str]:
    """Serve 2.7+: all HEALTHY (or autoscaling: Serve 2.9's rank) is RUNNING; an UNHEALTHY
    deployment fails the deploy if the app never got to RUNNING, else makes it UNHEALTHY;
    anything else is DEPLOYING."""
    if all(d.status in SETTLED for d in deployments):
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


# --- the snapshot ------------------------------------------------------------------------------


def refused_message(attempt: Attempt, target: Target | None) -> str:
    count = len(attempt.errors)
    if attempt.outcome is Verdict.UNREADABLE:
        head = f"{attempt.name[0].upper()}{attempt.name[1:]} could not be read."
    else:
        noun = "its config is" if attempt.name.startswith("commit") else "it is"
        plural = "s" if count != 1 else ""
        head = (
            f"{attempt.name[0].upper()}{attempt.name[1:]} was not applied: {noun} invalid "
            f"({count} error{plural})."
        )
    still = f" Still running {target.name}." if target else " Nothing is deployed."
    lines = list(attempt.errors[:MAX_ERRORS_IN_MESSAGE])
    if count > MAX_ERRORS_IN_MESSAGE:
        lines.append(f"... and {count - MAX_ERRORS_IN_MESSAGE} more")
    return "\n".join([head + still, *lines])


def _preparing_message(preparing: Preparing, target: Target | None) -> str:
    doing = f": {preparing.progress}" if preparing.progress else ""
    still = f" Still running {target.name}." if target else ""
    purpose = " to pin it" if preparing.pinning else ""
    return f"Preparing {preparing.name}{purpose}{doing}.{still}"


def pinned_message(source: SourceOutcome) -> str:
    """What a pin means for the applications: what is held, and where the branch is."""
    pin = source.pin
    if pin is None:
        return ""
    why = f" ({pin.reason})" if pin.reason and pin.reason != "pinned" else ""
    text = f"Pinned at commit {pin.commit[:12]}{why}."
    latest = source.latest
    if latest is not None and latest != pin.commit:
        text += f" The branch is at commit {latest[:12]}: waiting behind the pin"
        refused = source.refused_head
        if refused is not None:
            n = len(refused.errors)
            text += f" (that commit was refused: {n} error{'s' if n != 1 else ''})"
        text += ". Unpin to follow the branch again."
    return text


def _with_pin(
    apps: tuple[ApplicationStatusInfo, ...], source: SourceOutcome
) -> tuple[ApplicationStatusInfo, ...]:
    text = pinned_message(source)
    return tuple(
        replace(app, message=f"{app.message}\n{text}" if app.message else text) for app in apps
    )


def _overlay(
    apps: tuple[ApplicationStatusInfo, ...], status: ApplicationStatus, message: str
) -> tuple[ApplicationStatusInfo, ...]:
    if not apps:
        return (ApplicationStatusInfo("default", status, message),)
    return tuple(replace(app, status=status, message=message) for app in apps)


def source_overlay(
    apps: tuple[ApplicationStatusInfo, ...], source: SourceOutcome
) -> tuple[ApplicationStatusInfo, ...]:
    """The applications as the branch makes them look: DEPLOY_FAILED while it points at a
    refused commit, DEPLOYING while its head is being prepared (and nothing fails: a preparation
    retried after a transient failure shows the failure, over what runs), else as they run.
    While pinned, as they run, saying so; DEPLOYING while a pin's commit is prepared."""
    preparing = source.preparing
    if preparing is not None and preparing.pinning and source.failure is None:
        message = _preparing_message(preparing, source.target)
        return _overlay(apps, ApplicationStatus.DEPLOYING, message)
    if source.pin is not None:
        return _with_pin(apps, source)
    refused = source.refused_head
    if refused is not None:
        return _overlay(
            apps, ApplicationStatus.DEPLOY_FAILED, refused_message(refused, source.target)
        )
    if preparing is not None and preparing.commit == source.latest and source.failure is None:
        message = _preparing_message(preparing, source.target)
        return _overlay(apps, ApplicationStatus.DEPLOYING, message)
    return apps


def _commits(source: SourceOutcome | None, redact: Redactor) -> CommitStatus:
    if source is None:
        return CommitStatus()
    target, attempt, preparing = source.target, source.attempt, source.preparing
    refused = source.refused_head
    return CommitStatus(
        applied=target.commit if target else None,
        applied_document=redact(target.config) if target else None,
        applied_at=target.received_at if target else 0.0,
        latest=source.latest,
        attempted=attempt.commit if attempt else None,
        outcome=attempt.outcome.value if attempt else None,
        errors=refused.errors if refused else (),
        preparing=preparing.commit if preparing else None,
        progress=preparing.progress if preparing else "",
        warnings=target.config.warnings if target else (),
        pinned=source.pin.commit if source.pin else None,
        pinned_at=source.pin.at if source.pin else 0.0,
        pin_reason=source.pin.reason if source.pin else "",
    )


def compose(
    outcome: PassOutcome,
    apps: tuple[ApplicationStatusInfo, ...],
    *,
    redact: Redactor,
    passes: int,
    capacity: Capacity | None = None,
    retry: str | None = None,
    events: tuple[ReplicaEvent, ...] = (),
    nodes: tuple[EngineNode, ...] = (),
) -> Snapshot:
    """The one place a `Snapshot` is made: the applications (their live statuses, then what the
    branch says over them), the commits, the loop's health, the host's room (and, on a
    multi-node engine, its nodes), and for the dashboard the commit timeline and the recent
    replica events."""
    source = outcome.source
    target = source.target
    engine = outcome.engine
    engine_error = engine.failure.message if engine.failure else engine.ingress_error
    return Snapshot(
        shape=target.config.shape if target else None,
        applications=source_overlay(apps, source),
        commits=_commits(source, redact),
        loop=LoopStatus(
            source_error=source.failure.message if source.failure else None,
            engine_error=engine_error,
            retry=retry,
            last_pass_at=outcome.at,
            last_pass_duration_s=outcome.duration_s,
            passes=passes,
        ),
        capacity=capacity,
        pending_replicas=outcome.engine.pending + outcome.engine.placing,
        timeline=source.timeline,
        events=events,
        nodes=nodes,
    )
