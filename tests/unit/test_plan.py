"""The planner on hand-built states, and across passes with a tiny behavioural model of the engine
(started replicas are STARTING on the next pass and RUNNING on the one after; drained replicas are
STOPPING for one pass, then gone)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import pytest

from reconciler.model import (
    ApplicationSpec,
    DeploymentSpec,
    DrainReplica,
    FailureRecord,
    HttpOptions,
    ObservedReplica,
    Plan,
    ReconfigureReplica,
    RemoveReplica,
    ReplicaState,
    ServeConfig,
    StartReplica,
    StopReplica,
)
from reconciler.plan import STABLE_S, next_failures, plan, rollout_batch

RUNNING, STARTING, STOPPING = ReplicaState.RUNNING, ReplicaState.STARTING, ReplicaState.STOPPING
FAILED, STALE, UNHEALTHY = ReplicaState.FAILED, ReplicaState.STALE, ReplicaState.UNHEALTHY
_ids = itertools.count()


# --- builders ---------------------------------------------------------------------------------


def spec(
    name: str = "D", app: str = "app", n: int = 2, code: str = "v1", **kw: object
) -> DeploymentSpec:
    fields: dict[str, object] = {
        "app": app,
        "name": name,
        "import_path": "mod:app",
        "num_replicas": n,
        "route_prefix": None,
        "is_ingress": False,
        "image": f"img:{code}",
    }
    fields.update(kw)
    return DeploymentSpec(**fields)  # type: ignore[arg-type]


def config(*specs: DeploymentSpec) -> ServeConfig:
    apps: dict[str, list[DeploymentSpec]] = {}
    for s in specs:
        apps.setdefault(s.app, []).append(s)
    return ServeConfig(
        shape="multi",
        http=HttpOptions(),
        applications=tuple(
            ApplicationSpec(name, "/" + name, "mod:app", ds[0].name, tuple(ds))
            for name, ds in apps.items()
        ),
    )


def rep(
    s: DeploymentSpec,
    index: int,
    state: ReplicaState = RUNNING,
    *,
    version: str | None = None,
    uc: str | bool | None = True,
    **kw: object,
) -> ObservedReplica:
    """A replica of `s`; `uc=True` means it runs the spec's user_config."""
    n = next(_ids)
    return ObservedReplica(
        container_id=f"c{n}",
        name=f"{s.app}-{s.name}-{index}",
        app=s.app,
        deployment=s.name,
        index=index,
        version=s.version if version is None else version,
        state=state,
        user_config_hash=s.user_config_hash if uc is True else (uc or None),
        **kw,  # type: ignore[arg-type]
    )


def running(s: DeploymentSpec, n: int, **kw: object) -> list[ObservedReplica]:
    return [rep(s, i, **kw) for i in range(n)]  # type: ignore[arg-type]


def of(p: Plan, kind: type) -> list:  # type: ignore[type-arg]
    return [a for a in p.actions if isinstance(a, kind)]


def started(p: Plan) -> list[int]:
    return sorted(a.index for a in of(p, StartReplica))


def drained(p: Plan) -> list[int]:
    return sorted(a.replica.index for a in of(p, DrainReplica))


# --- the engine model -------------------------------------------------------------------------


class Engine:
    """Applies plans the way the Docker engine would, one pass at a time."""

    def __init__(self, observed: Sequence[ObservedReplica]) -> None:
        self.replicas = {r.container_id: r for r in observed}
        self.now = 1000.0

    def observe(self) -> list[ObservedReplica]:
        return list(self.replicas.values())

    def apply(self, p: Plan) -> None:
        before = dict(self.replicas)
        for a in p.actions:
            if isinstance(a, RemoveReplica):
                del self.replicas[a.replica.container_id]
            elif isinstance(a, DrainReplica):
                self.replicas[a.replica.container_id] = replace(
                    a.replica, state=STOPPING, drain_deadline=self.now + a.timeout_s
                )
            elif isinstance(a, ReconfigureReplica):
                self.replicas[a.replica.container_id] = replace(
                    a.replica, user_config_hash=a.spec.user_config_hash
                )
            elif isinstance(a, StartReplica):
                new = rep(a.spec, a.index, STARTING)
                self.replicas[new.container_id] = new
        for cid, r in before.items():  # the world moves on between passes
            if cid in self.replicas and r.state is STARTING:
                self.replicas[cid] = replace(self.replicas[cid], state=RUNNING)
            elif cid in self.replicas and r.state is STOPPING:
                del self.replicas[cid]
        self.now += 10.0


def check_indexes(p: Plan, observed: Sequence[ObservedReplica]) -> None:
    """No two replicas of a deployment planned with one index, nor one a live replica holds."""
    new = [(a.spec.key, a.index) for a in of(p, StartReplica)]
    assert len(new) == len(set(new))
    held = {(r.key, r.index) for r in observed if r.state is not STOPPING}
    assert not held & set(new)


def converge(cfg: ServeConfig, engine: Engine, passes: int = 40) -> list[Plan]:
    """Plan and apply until settled; the plans made, the settled one last."""
    failures: dict[tuple[str, str], FailureRecord] = {}
    plans = []
    for _ in range(passes):
        observed = engine.observe()
        failures = next_failures(cfg, observed, failures, engine.now)
        p = plan(cfg, observed, failures, engine.now)
        check_indexes(p, observed)
        plans.append(p)
        if p.settled:
            return plans
        engine.apply(p)
    raise AssertionError(f"not settled after {passes} passes: {engine.observe()}")


# --- scaling ----------------------------------------------------------------------------------


def test_first_deploy_starts_every_replica_at_once_from_index_0() -> None:
    s = spec(n=3)
    p = plan(config(s), [], {}, 0.0)
    assert started(p) == [0, 1, 2]
    assert p.routable == frozenset() and not p.settled


def test_scale_up_keeps_the_running_replicas() -> None:
    s = spec(n=2)
    observed = running(s, 2)
    p = plan(config(replace(s, num_replicas=4)), observed, {}, 0.0)
    assert started(p) == [2, 3]
    assert not of(p, DrainReplica) and not of(p, RemoveReplica)
    assert p.routable == {r.container_id for r in observed}


def test_scale_down_drains_the_highest_indexes_only() -> None:
    s = spec(n=4)
    observed = running(s, 4)
    p = plan(config(replace(s, num_replicas=2)), observed, {}, 0.0)
    assert drained(p) == [2, 3]
    assert len(p.actions) == 2
    assert all(a.timeout_s == s.graceful_shutdown_timeout_s for a in of(p, DrainReplica))
    assert p.routable == {observed[0].container_id, observed[1].container_id}


def test_scale_down_gives_up_starting_replicas_first() -> None:
    s = spec(n=1)
    observed = [rep(s, 0, STARTING), rep(s, 1)]
    p = plan(config(s), observed, {}, 0.0)
    assert [a.replica.container_id for a in of(p, DrainReplica)] == [observed[0].container_id]
    assert of(p, DrainReplica)[0].timeout_s == 0.0  # it never served a request


def test_scale_2_to_4_and_back_converges_keeping_the_first_two() -> None:
    s = spec(n=2)
    engine = Engine(running(s, 2))
    originals = {r.container_id for r in engine.observe()}
    converge(config(replace(s, num_replicas=4)), engine)
    assert len(engine.observe()) == 4 and originals <= set(engine.replicas)
    converge(config(s), engine)
    assert set(engine.replicas) == originals


# --- user_config ------------------------------------------------------------------------------


def test_user_config_change_reconfigures_running_replicas_in_place() -> None:
    s = spec(n=3)
    observed = [*running(s, 3), rep(s, 3, STARTING)]
    new = replace(s, num_replicas=4, user_config={"price": 5})
    assert new.version == s.version
    p = plan(config(new), observed, {}, 0.0)
    assert sorted(a.replica.index for a in of(p, ReconfigureReplica)) == [0, 1, 2]
    assert all(a.spec == new for a in of(p, ReconfigureReplica))
    assert len(p.actions) == 3  # nothing started, drained or removed; STARTING left alone


def test_unknown_user_config_hash_is_reconfigured() -> None:
    s = spec(n=1)
    p = plan(config(s), [rep(s, 0, uc=None)], {}, 0.0)
    assert len(of(p, ReconfigureReplica)) == 1 and not p.settled


# --- rolling update ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", [1, 3, 5, 10, 12])
def test_rolling_update_keeps_serving_and_converges(target: int) -> None:
    old = spec(n=target, code="v1")
    new = spec(n=target, code="v2")
    engine = Engine(running(old, target))
    plans = converge(config(new), engine)
    # start-first: the routing set never shrinks below the target (Serve's bound, target - batch,
    # is weaker)
    assert min(len(p.routable) for p in plans) >= target
    assert len(plans) > 2
    assert all(r.version == new.version for r in engine.observe())
    assert len(engine.observe()) == target


def test_rolling_update_bounds_the_live_total() -> None:
    target = 10
    old, new = spec(n=target, code="v1"), spec(n=target, code="v2")
    engine = Engine(running(old, target))
    cfg, batch = config(new), rollout_batch(target)
    assert batch == 2
    for _ in range(40):
        observed = engine.observe()
        p = plan(cfg, observed, {}, engine.now)
        if p.settled:
            break
        gone = {a.replica.container_id for a in p.actions if not isinstance(a, StartReplica)}
        live_after = [r for r in observed if r.state in (RUNNING, STARTING)]
        total = len([r for r in live_after if r.container_id not in gone]) + len(started(p))
        assert total <= target + batch
        assert sum(1 for r in observed if r.state is STARTING) <= batch
        engine.apply(p)
    else:
        raise AssertionError("rolling update did not settle")


def test_rolling_update_first_pass_starts_one_batch_and_drains_nothing() -> None:
    old, new = spec(n=5, code="v1"), spec(n=5, code="v2")
    p = plan(config(new), running(old, 5), {}, 0.0)
    assert started(p) == [5]  # 0-4 are held by the old replicas
    assert not of(p, DrainReplica)


def test_old_replica_drained_once_a_new_one_runs_starting_old_ones_first() -> None:
    old, new = spec(n=3, code="v1"), spec(n=3, code="v2")
    observed = [rep(old, 0), rep(old, 1), rep(old, 2, STARTING), rep(new, 3)]
    p = plan(config(new), observed, {}, 0.0)
    assert [a.replica.index for a in of(p, DrainReplica)] == [2]
    assert started(p) == [4]
    assert p.routable == {observed[i].container_id for i in (0, 1, 3)}


def test_old_running_replicas_beyond_keep_go_highest_index_first() -> None:
    old, new = spec(n=3, code="v1"), spec(n=3, code="v2")
    observed = [*running(old, 3), rep(new, 3), rep(new, 4)]
    p = plan(config(new), observed, {}, 0.0)
    assert drained(p) == [1, 2]


# --- failures, backoff, cleanup ---------------------------------------------------------------


def test_crashed_replica_is_removed_and_replaced_at_a_fresh_index() -> None:
    s = spec(n=2)
    observed = [rep(s, 0, FAILED, error="boom"), rep(s, 1)]
    p = plan(config(s), observed, {}, 0.0)
    assert [a.replica.index for a in of(p, RemoveReplica)] == [0]
    assert started(p) == [2]  # index 0 is still held by the failed container this pass
    assert p.routable == {observed[1].container_id}


def test_backoff_blocks_starts_until_retry_at() -> None:
    s = spec(n=1)
    observed = [rep(s, 0, FAILED, error="ValueError: no price given")]
    failures = next_failures(config(s), observed, {}, 100.0)
    assert failures[s.key] == FailureRecord(s.version, 1, "ValueError: no price given", 101.0)
    p = plan(config(s), observed, failures, 100.0)
    assert started(p) == [] and len(of(p, RemoveReplica)) == 1 and not p.settled
    p = plan(config(s), [], failures, 100.5)
    assert p.actions == () and not p.settled
    assert started(plan(config(s), [], failures, 101.0)) == [0]


def test_backoff_doubles_up_to_64_seconds() -> None:
    s = spec(n=1)
    failures: dict[tuple[str, str], FailureRecord] = {}
    waits = []
    for step in range(9):
        now = 1000.0 * step
        failures = next_failures(config(s), [rep(s, 0, FAILED)], failures, now)
        waits.append(failures[s.key].retry_at - now)
    assert waits == [1, 2, 4, 8, 16, 32, 64, 64, 64]
    assert failures[s.key].count == 9 and failures[s.key].last_error


def test_failure_record_resets_on_running_replica_and_on_new_version() -> None:
    s = spec(n=2)
    record = FailureRecord(s.version, 4, "err", 50.0)
    assert next_failures(config(s), [rep(s, 0)], {s.key: record}, 10.0) == {}
    assert next_failures(config(s), [rep(s, 0, STARTING)], {s.key: record}, 10.0) == {s.key: record}
    assert next_failures(config(spec(code="v2")), [], {s.key: record}, 10.0) == {}
    old_failed = rep(s, 0, FAILED, version="old")
    assert next_failures(config(s), [old_failed], {}, 10.0) == {}  # only the spec's version counts


def test_a_replica_that_crashes_soon_after_running_does_not_reset_the_backoff() -> None:
    s = spec(n=1)
    record = FailureRecord(s.version, 3, "err", 50.0)
    young = rep(s, 0, created_at=100.0)  # RUNNING for 5 s: the streak goes on
    assert next_failures(config(s), [young], {s.key: record}, 105.0) == {s.key: record}
    after = next_failures(config(s), [replace(young, state=FAILED)], {s.key: record}, 106.0)
    assert (after[s.key].count, after[s.key].retry_at) == (4, 106.0 + 8)
    assert next_failures(config(s), [young], {s.key: record}, 100.0 + STABLE_S) == {}


def test_a_failed_health_check_counts_towards_the_backoff() -> None:
    s = spec(n=1)
    sick = rep(s, 0, UNHEALTHY, error="TimeoutError: hung")
    record = next_failures(config(s), [sick], {}, 10.0)[s.key]
    assert (record.count, record.retry_at, record.last_error) == (1, 11.0, sick.error)
    p = plan(config(s), [sick], {s.key: record}, 10.0)
    assert len(of(p, DrainReplica)) == 1 and started(p) == []


def test_two_failures_in_one_pass_count_twice() -> None:
    s = spec(n=2)
    failed = [rep(s, 0, FAILED, error="a"), rep(s, 1, FAILED, error="b")]
    record = next_failures(config(s), failed, {}, 0.0)[s.key]
    assert (record.count, record.last_error, record.retry_at) == (2, "b", 2.0)


def test_stale_and_failed_are_removed_unhealthy_drained_overdue_stopping_removed() -> None:
    s = spec(n=2, graceful_shutdown_timeout_s=7.0)
    observed = [
        rep(s, 0, STALE),
        rep(s, 1, UNHEALTHY),
        rep(s, 5, STOPPING, drain_deadline=9.0),
        rep(s, 6, STOPPING, drain_deadline=11.0),
    ]
    p = plan(config(s), observed, {}, 10.0)
    removed = sorted(a.replica.index for a in of(p, RemoveReplica))
    assert removed == [0, 5]
    assert [(a.replica.index, a.timeout_s) for a in of(p, DrainReplica)] == [(1, 7.0)]
    assert started(p) == [2, 3]  # 0 and 1 still held; STOPPING indexes are free but 5,6 unneeded


def test_stopping_replicas_free_their_index() -> None:
    s = spec(n=1)
    p = plan(config(s), [rep(s, 0, STOPPING, drain_deadline=99.0)], {}, 0.0)
    assert started(p) == [0] and not of(p, RemoveReplica)


def test_removed_deployment_and_application_are_drained() -> None:
    kept, gone = spec("Kept", n=1), spec("Gone", app="other", n=1)
    observed = [rep(kept, 0), rep(gone, 0), rep(gone, 1, STARTING), rep(gone, 2, FAILED)]
    p = plan(config(kept), observed, {}, 0.0)
    assert sorted(a.replica.index for a in of(p, DrainReplica)) == [0, 1]
    assert [a.replica.index for a in of(p, RemoveReplica)] == [2]
    assert p.routable == {observed[0].container_id} and not p.settled


# --- idempotence and settling -----------------------------------------------------------------


def test_converged_state_gives_an_empty_settled_plan_twice() -> None:
    a, b = spec("A", n=2, user_config={"x": 1}), spec("B", app="other", n=1)
    observed = [*running(a, 2), *running(b, 1)]
    first = plan(config(a, b), observed, {}, 0.0)
    second = plan(config(a, b), observed, {}, 5.0)
    assert first == second
    assert first.actions == () and first.settled
    assert first.routable == {r.container_id for r in observed}


def test_not_settled_while_a_replica_is_draining() -> None:
    s = spec(n=1)
    draining = rep(s, 1, STOPPING, drain_deadline=99.0, stop_sent=True)
    p = plan(config(s), [rep(s, 0), draining], {}, 0.0)
    assert p.actions == () and not p.settled


def test_a_drained_replica_is_told_to_stop_once_the_ingress_has_nothing_on_it() -> None:
    s = spec(n=1, graceful_shutdown_wait_loop_s=2.0)

    def stops(in_flight: int | None, now: float, sent: bool = False) -> list[str]:
        r = rep(s, 1, STOPPING, drain_deadline=20.0, in_flight=in_flight, stop_sent=sent)
        return [a.reason for a in of(plan(config(s), [rep(s, 0), r], {}, now), StopReplica)]

    assert stops(3, 0.0) == []  # busy, far from the deadline: wait
    assert stops(0, 0.0) == ["no request left on it"]
    assert stops(None, 0.0) == ["out of rotation"]  # the ingress cannot say: as before
    assert stops(3, 16.0) == []
    assert stops(3, 17.0) == ["drain deadline near, 3 left"]  # wait loop 2 s + 1 s margin
    assert stops(0, 0.0, sent=True) == []  # once told, it is left to finish


def test_actions_come_in_a_fixed_order() -> None:
    s = spec(n=2, user_config={"v": 2})
    observed = [rep(s, 0, FAILED), rep(s, 1, UNHEALTHY), rep(s, 2, uc="other")]
    kinds = [type(a).__name__ for a in plan(config(s), observed, {}, 0.0).actions]
    assert kinds == ["RemoveReplica", "DrainReplica", "ReconfigureReplica", "StartReplica"]


def test_not_settled_while_a_removed_deployment_still_drains() -> None:
    kept, gone = spec("Kept", n=1), spec("Gone", n=1)
    observed = [rep(kept, 0), rep(gone, 0, STOPPING, drain_deadline=99.0, in_flight=2)]
    p = plan(config(kept), observed, {}, 0.0)
    assert p.actions == () and not p.settled


def test_scale_down_prefers_replicas_that_would_need_a_reconfigure() -> None:
    s = spec(n=3, user_config={"v": 2})
    observed = [rep(s, 0, uc="stale"), rep(s, 1), rep(s, 2)]
    p = plan(config(replace(s, num_replicas=2)), observed, {}, 0.0)
    assert drained(p) == [0]
    assert not of(p, ReconfigureReplica)
