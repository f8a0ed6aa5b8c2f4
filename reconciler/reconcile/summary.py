"""Turn one pass's findings into the `Snapshot` the API serves.

The one rule that is ours rather than Serve's: a commit whose config is invalid is never applied,
and while it is the branch head, every application says DEPLOY_FAILED with that commit and its
errors, although the last good commit keeps running (and its deployments report their live state).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
    JSONValue,
    ServeConfig,
    Snapshot,
)
from reconciler.reconcile.target import Attempt, Target, TargetView

Redactor = Callable[[ServeConfig], Mapping[str, JSONValue]]

MAX_ERRORS_IN_MESSAGE = 20


def invalid_commit_message(attempt: Attempt, target: Target | None) -> str:
    count = len(attempt.errors)
    head = (
        f"Commit {attempt.commit[:12]} was not applied: its config is invalid "
        f"({count} error{'s' if count != 1 else ''})."
    )
    if attempt.outcome == "error":
        head = f"Commit {attempt.commit[:12]} could not be read."
    still = f" Still running commit {target.commit[:12]}." if target else " Nothing is deployed."
    lines = list(attempt.errors[:MAX_ERRORS_IN_MESSAGE])
    if count > MAX_ERRORS_IN_MESSAGE:
        lines.append(f"... and {count - MAX_ERRORS_IN_MESSAGE} more")
    return "\n".join([head + still, *lines])


def overlay_failed_attempt(
    apps: tuple[ApplicationStatusInfo, ...], attempt: Attempt | None, target: Target | None
) -> tuple[ApplicationStatusInfo, ...]:
    """Mark every application DEPLOY_FAILED while the newest commit is one we refused."""
    if attempt is None or attempt.outcome == "applied":
        return apps
    if target is not None and attempt.commit == target.commit:
        return apps
    message = invalid_commit_message(attempt, target)
    if not apps:
        return (ApplicationStatusInfo("default", ApplicationStatus.DEPLOY_FAILED, message),)
    return tuple(
        replace(app, status=ApplicationStatus.DEPLOY_FAILED, message=message) for app in apps
    )


def summarise(
    *,
    view: TargetView | None,
    apps: tuple[ApplicationStatusInfo, ...],
    redact: Redactor,
    engine_error: str | None,
    pass_at: float,
    duration_s: float,
    passes: int,
) -> Snapshot:
    target = view.target if view else None
    attempt = view.attempt if view else None
    failed = attempt is not None and attempt.outcome != "applied"
    return Snapshot(
        shape=target.config.shape if target else None,
        applications=overlay_failed_attempt(apps, attempt, target),
        applied_commit=target.commit if target else None,
        applied_document=redact(target.config) if target else None,
        applied_at=target.received_at if target else 0.0,
        latest_commit=view.latest_commit if view else None,
        attempted_commit=attempt.commit if attempt else None,
        attempt_outcome=attempt.outcome if attempt else None,
        attempt_errors=attempt.errors if attempt and failed else (),
        source_error=view.source_error if view else None,
        engine_error=engine_error,
        last_pass_at=pass_at,
        last_pass_duration_s=duration_s,
        passes=passes,
    )
