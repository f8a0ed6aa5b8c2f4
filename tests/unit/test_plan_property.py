"""Property test of the planner: from random observed states, plan + the engine model converges,
never plans two replicas with one index, and never shrinks the routing set below what served."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_plan import Engine, check_indexes, config, rep, spec

from reconciler.model import FailureRecord, ObservedReplica, ReplicaState, ServeConfig
from reconciler.plan import next_failures, plan

_STATES = st.sampled_from(list(ReplicaState))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ServeConfig, list[ObservedReplica]]:
    target = draw(st.integers(1, 6))
    user_config = draw(st.sampled_from([None, {"price": 3}]))
    old = spec("A", n=draw(st.integers(1, 6)), code="v1")
    new = spec("A", n=target, code="v2", user_config=user_config)
    other = spec("B", n=draw(st.integers(1, 3)))
    gone = spec("Gone", app="old", n=1)
    observed = []
    for s in (old, new, other, gone):
        for index in draw(st.lists(st.integers(0, 9), unique=True, max_size=5)):
            state = draw(_STATES)
            deadline = draw(st.sampled_from([None, 0.0, 5000.0]))
            observed.append(
                rep(
                    s,
                    index,
                    state,
                    uc=draw(st.sampled_from([True, "stale", None])),
                    drain_deadline=deadline if state is ReplicaState.STOPPING else None,
                    error=draw(st.sampled_from([None, "ValueError: boom"])),
                )
            )
    # Two live containers of one deployment cannot share a name, hence an index.
    seen: set[tuple[tuple[str, str], int]] = set()
    unique = []
    for r in observed:
        slot = (r.key, r.index)
        if r.state is not ReplicaState.STOPPING:
            if slot in seen:
                continue
            seen.add(slot)
        unique.append(r)
    return config(new, other), unique


def _serving(observed: list[ObservedReplica], key: tuple[str, str]) -> int:
    return sum(1 for r in observed if r.key == key and r.state is ReplicaState.RUNNING)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_random_states_converge_safely(scenario: tuple[ServeConfig, list[ObservedReplica]]) -> None:
    cfg, observed = scenario
    engine = Engine(observed)
    targets = {s.key: s.num_replicas for s in cfg.deployments()}
    failures: dict[tuple[str, str], FailureRecord] = {}
    for _ in range(40):
        seen = engine.observe()
        failures = next_failures(cfg, seen, failures, engine.now)
        p = plan(cfg, seen, failures, engine.now)
        check_indexes(p, seen)
        for key, target in targets.items():
            routable = sum(1 for r in seen if r.key == key and r.container_id in p.routable)
            assert routable >= min(target, _serving(seen, key))
        if p.settled:
            break
        engine.apply(p)
    else:
        raise AssertionError(f"not settled: {engine.observe()}")
    final = engine.observe()
    for s in cfg.deployments():
        mine = [r for r in final if r.key == s.key]
        assert len(mine) == s.num_replicas
        assert {(r.version, r.user_config_hash, r.state) for r in mine} <= {
            (s.version, s.user_config_hash, ReplicaState.RUNNING)
        }
    assert {r.key for r in final} == set(targets)
