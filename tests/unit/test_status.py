"""Deployment and application statuses derived from observed replicas (Serve 2.7+ rules)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_plan import config, rep, running, spec

from reconciler.model import (
    ApplicationStatus,
    DeploymentStatus,
    DeploymentStatusInfo,
    FailureRecord,
    ReplicaState,
)
from reconciler.status import (
    HEALTH_CHECK_FAILED,
    application_statuses,
    deployment_statuses,
    failure_threshold,
)

RUNNING, STARTING, STOPPING = ReplicaState.RUNNING, ReplicaState.STARTING, ReplicaState.STOPPING
HEALTHY, UPDATING = DeploymentStatus.HEALTHY, DeploymentStatus.UPDATING
UNHEALTHY = DeploymentStatus.UNHEALTHY


def status_of(s, observed, failures=None, now=0.0) -> DeploymentStatusInfo:  # type: ignore[no-untyped-def]
    return deployment_statuses(config(s), observed, failures or {}, now)[s.key]


def test_healthy_when_exactly_the_target_runs_in_sync() -> None:
    s = spec(n=2, user_config={"p": 1})
    info = status_of(s, running(s, 2))
    assert info == DeploymentStatusInfo("D", HEALTHY, "", 2, (("RUNNING", 2),))


@pytest.mark.parametrize(
    ("observed", "message"),
    [
        ([], "Starting: 0 of 2 replicas healthy"),
        ("one-starting", "Starting: 1 of 2 replicas healthy"),
        ("four-running", "Scaling from 4 to 2 replicas"),
        ("two-draining", "Draining 2 replicas"),
        ("stale-config", "Reconfiguring 1 replica"),
        ("exited", "Starting: 1 of 2 replicas healthy; replacing 1 replica that exited"),
    ],
)
def test_updating_messages_say_what_is_happening(observed: object, message: str) -> None:
    s = spec(n=2)
    states = {
        "one-starting": lambda: [rep(s, 0), rep(s, 1, STARTING)],
        "four-running": lambda: running(s, 4),
        "two-draining": lambda: [*running(s, 2), *(rep(s, i, STOPPING) for i in (2, 3))],
        "stale-config": lambda: [rep(s, 0), rep(s, 1, uc="old")],
        "exited": lambda: [rep(s, 0), rep(s, 1, ReplicaState.FAILED)],
    }
    replicas = states[observed]() if isinstance(observed, str) else []
    info = status_of(s, replicas)
    assert (info.status, info.message) == (UPDATING, message)


def test_a_replica_starting_for_more_than_30s_is_said_to_be_slow_as_serve_says() -> None:
    s = spec(n=2)
    observed = [rep(s, 0, created_at=100.0), rep(s, 1, STARTING, created_at=100.0)]
    assert status_of(s, observed, now=125.0).message == "Starting: 1 of 2 replicas healthy"
    info = status_of(s, observed, now=131.0)
    assert info.status is UPDATING  # a slow start changes the message, not the status
    assert info.message == (
        "Starting: 1 of 2 replicas healthy; 1 replica has taken more than 30s to initialize "
        "(a slow __init__ or reconfigure?)"
    )


def test_rolling_update_message_and_replica_counts() -> None:
    old, new = spec(n=3, code="v1"), spec(n=3, code="v2")
    observed = [*running(old, 3), rep(new, 3), rep(new, 4, STARTING)]
    info = status_of(new, observed)
    assert info.status is UPDATING
    assert info.message == "Rolling update: 1 of 3 replicas at the new version"
    assert info.target_replicas == 3
    assert info.replica_states == (("RUNNING", 4), ("STARTING", 1))


def test_below_the_threshold_a_failure_shows_while_updating() -> None:
    s = spec(n=1)
    record = FailureRecord(s.version, 1, "ValueError: no price given", 1.0)
    info = status_of(s, [], {s.key: record})
    assert info.status is UPDATING
    assert info.message == (
        "Replica failed to start (1 of 3 attempts before UNHEALTHY): ValueError: no price given. "
        "Starting: 0 of 1 replica healthy"
    )


def test_unhealthy_at_the_threshold_with_the_users_error_and_the_retry() -> None:
    s = spec(n=1)
    record = FailureRecord(s.version, 3, "ValueError: no price given", 104.0)
    info = status_of(s, [rep(s, 0, ReplicaState.FAILED)], {s.key: record}, now=100.0)
    assert info.status is UNHEALTHY
    assert info.message == (
        "The deployment failed to start 3 times in a row. "
        "Last error: ValueError: no price given. Retrying in 4s."
    )


def test_threshold_needs_no_running_replica_of_the_version_and_ignores_other_versions() -> None:
    s = spec(n=2)
    record = FailureRecord(s.version, 6, "boom", 0.0)
    assert status_of(s, [rep(s, 0)], {s.key: record}).status is UPDATING
    assert status_of(s, [], {s.key: record}).status is UNHEALTHY
    other = FailureRecord("another-version", 60, "boom", 0.0)
    assert status_of(s, [], {s.key: other}).message == "Starting: 0 of 2 replicas healthy"


def test_failure_threshold_is_three_per_replica_capped_at_100() -> None:
    assert [failure_threshold(n) for n in (0, 1, 2, 33, 34, 500)] == [1, 3, 6, 99, 100, 100]


def test_health_check_failure_of_the_current_version_is_unhealthy() -> None:
    s = spec(n=2)
    info = status_of(s, [rep(s, 0), rep(s, 1, ReplicaState.UNHEALTHY)])
    assert (info.status, info.message) == (UNHEALTHY, HEALTH_CHECK_FAILED)
    said = rep(s, 1, ReplicaState.UNHEALTHY, error="TimeoutError: hung")
    message = status_of(s, [rep(s, 0), said]).message
    assert message == f"{HEALTH_CHECK_FAILED} Last health check: TimeoutError: hung."
    old = rep(s, 1, ReplicaState.UNHEALTHY, version="old")
    assert status_of(s, [rep(s, 0), old]).status is UPDATING


# --- applications ----------------------------------------------------------------------------


def _app(statuses: dict[str, DeploymentStatus], previous: ApplicationStatus | None):  # type: ignore[no-untyped-def]
    specs = [spec(name, app="shop", route_prefix="/shop") for name in statuses]
    infos = {
        s.key: DeploymentStatusInfo(s.name, statuses[s.name], f"{s.name} says why") for s in specs
    }
    prev = {} if previous is None else {"shop": previous}
    (info,) = application_statuses(config(*specs), infos, prev, 123.0)
    return info


def test_all_healthy_is_running() -> None:
    info = _app({"A": HEALTHY, "B": HEALTHY}, ApplicationStatus.DEPLOYING)
    assert (info.status, info.message, info.deployment_timestamp) == (
        ApplicationStatus.RUNNING,
        "",
        123.0,
    )
    assert [d.name for d in info.deployments] == ["A", "B"]


def test_updating_is_deploying() -> None:
    info = _app({"A": HEALTHY, "B": UPDATING}, ApplicationStatus.RUNNING)
    assert (info.status, info.message) == (ApplicationStatus.DEPLOYING, "")


@pytest.mark.parametrize(
    ("previous", "expected"),
    [
        (None, ApplicationStatus.DEPLOY_FAILED),
        (ApplicationStatus.NOT_STARTED, ApplicationStatus.DEPLOY_FAILED),
        (ApplicationStatus.DEPLOYING, ApplicationStatus.DEPLOY_FAILED),
        (ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.DEPLOY_FAILED),
        (ApplicationStatus.RUNNING, ApplicationStatus.UNHEALTHY),
        (ApplicationStatus.UNHEALTHY, ApplicationStatus.UNHEALTHY),
    ],
)
def test_unhealthy_deployment_fails_a_deploy_or_makes_a_running_app_unhealthy(
    previous: ApplicationStatus | None, expected: ApplicationStatus
) -> None:
    info = _app({"A": UNHEALTHY, "B": UPDATING, "C": UNHEALTHY}, previous)
    assert info.status is expected
    assert info.message == (
        "The deployments ['A', 'C'] are UNHEALTHY.\nA: A says why\nC: C says why"
    )


def test_applications_in_config_order_with_route_prefix() -> None:
    a, b = spec("A", app="zeta"), spec("B", app="alpha")
    cfg = config(a, b)
    cfg = replace(
        cfg, applications=(cfg.applications[0], replace(cfg.applications[1], route_prefix=None))
    )
    infos = application_statuses(cfg, deployment_statuses(cfg, [], {}, 0.0), {}, 5.0)
    assert [(i.name, i.route_prefix, i.status) for i in infos] == [
        ("zeta", "/zeta", ApplicationStatus.DEPLOYING),
        ("alpha", None, ApplicationStatus.DEPLOYING),
    ]


def test_replicas_the_engine_has_no_node_for_are_pending_with_its_reason() -> None:
    """On a swarm: a replica whose node was lost, or that no node has room for, waits; its
    deployment counts it PENDING (not STARTING) and says why, in Swarm's words."""
    s = spec(n=3)
    lost = "its node n3 (10.0.0.3) is down: heartbeat failure; Swarm moves it to another node"
    observed = [
        rep(s, 0),
        replace(rep(s, 1, STARTING), waiting=lost),
        replace(rep(s, 2, STARTING), waiting="no suitable node (insufficient resources)"),
    ]
    info = status_of(s, observed)
    assert info.status is UPDATING and info.pending_replicas == 2
    assert info.replica_states == (("RUNNING", 1),)
    assert info.message == (
        "Starting: 1 of 3 replicas healthy; 2 replicas wait for a node "
        f"({lost}; no suitable node (insufficient resources))"
    )
