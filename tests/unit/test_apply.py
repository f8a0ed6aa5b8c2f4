"""apply_plan against a behavioural model of the engine: order and containment of failures."""

from __future__ import annotations

import os
import threading
from dataclasses import replace

from reconciler.errors import EngineError
from reconciler.model import (
    ApplicationSpec,
    DeploymentSpec,
    DrainReplica,
    HttpOptions,
    IngressConfig,
    IngressServer,
    ObservedReplica,
    Plan,
    ReconfigureReplica,
    ReplicaState,
    ServeConfig,
    StartReplica,
    StopReplica,
)
from reconciler.reconcile.actions import apply_plan, default_container_slots


class ModelEngine:
    """Replicas as a dict; the ingress as the set of replicas it routes to."""

    def __init__(self, replicas: list[ObservedReplica], ingress_works: bool = True) -> None:
        self.replicas = {r.container_id: r for r in replicas}
        self.routed: set[str] = set(self.replicas)
        self.ingress_works = ingress_works

    def observe(self) -> list[ObservedReplica]:
        return list(self.replicas.values())

    def start_replica(self, spec: DeploymentSpec, index: int) -> None:
        cid = f"new-{index}"
        self.replicas[cid] = ObservedReplica(
            cid, cid, spec.app, spec.name, index, spec.version, ReplicaState.STARTING
        )

    def reconfigure(self, replica: ObservedReplica, spec: DeploymentSpec) -> None:
        pass

    def drain(self, replica: ObservedReplica, timeout_s: float) -> None:
        if replica.container_id in self.routed:
            raise AssertionError("drained a replica the ingress still routes to")
        self.replicas[replica.container_id] = replace(replica, state=ReplicaState.STOPPING)

    def stop(self, replica: ObservedReplica) -> None:
        current = self.replicas[replica.container_id]
        if current.state is not ReplicaState.STOPPING or replica.container_id in self.routed:
            raise AssertionError("told a replica to stop before it left rotation")
        self.replicas[replica.container_id] = replace(current, stop_sent=True)

    def remove(self, replica: ObservedReplica) -> None:
        self.replicas.pop(replica.container_id, None)

    def apply_ingress(self, http: HttpOptions | None, ingress: IngressConfig | None) -> None:
        if not self.ingress_works:
            raise EngineError("reload the ingress: container is restarting")
        self.routed = {s.replica_id for s in ingress.servers} if ingress else set()

    def remove_all(self) -> None:
        self.replicas.clear()


SPEC = DeploymentSpec(
    app="default",
    name="Greeter",
    import_path="g:app",
    num_replicas=1,
    route_prefix="/",
    is_ingress=True,
)
CONFIG = ServeConfig(
    shape="single",
    http=HttpOptions(),
    applications=(ApplicationSpec("default", "/", "g:app", "Greeter", (SPEC,)),),
)


def _render(config: ServeConfig, observed: object, routable: frozenset[str]) -> IngressConfig:
    servers = tuple(IngressServer("be", cid, "10.0.0.1", 8000, replica_id=cid) for cid in routable)
    return IngressConfig(text="", skeleton="", servers=servers)


def _old(cid: str, index: int) -> ObservedReplica:
    return ObservedReplica(cid, cid, "default", "Greeter", index, "old", ReplicaState.RUNNING)


def test_a_drained_replica_leaves_the_routing_set_first() -> None:
    a, b = _old("a", 0), _old("b", 1)
    engine = ModelEngine([a, b])
    plan = Plan((DrainReplica(b, 5.0, "scale down"),), routable=frozenset({"a"}), settled=False)
    errors = apply_plan(engine, plan, config=CONFIG, observed=[a, b], render_ingress=_render)
    assert errors == []
    assert engine.routed == {"a"}
    assert engine.replicas["b"].state == ReplicaState.STOPPING


def test_no_drain_while_the_ingress_cannot_be_updated() -> None:
    a, b = _old("a", 0), _old("b", 1)
    engine = ModelEngine([a, b], ingress_works=False)
    plan = Plan(
        (StartReplica(SPEC, 2), DrainReplica(b, 5.0, "rolling update")),
        routable=frozenset({"a"}),
        settled=False,
    )
    errors = apply_plan(engine, plan, config=CONFIG, observed=[a, b], render_ingress=_render)
    assert [e.action for e in errors] == [None]
    assert "ingress could not be updated" in errors[0].message
    assert engine.replicas["b"].state == ReplicaState.RUNNING  # still serving, not drained
    assert "new-2" in engine.replicas  # the start still happened


def test_a_drained_replica_is_stopped_even_while_the_ingress_fails() -> None:
    a = _old("a", 0)
    b = replace(_old("b", 1), state=ReplicaState.STOPPING, drain_deadline=99.0, in_flight=0)
    engine = ModelEngine([a, b], ingress_works=False)
    engine.routed = {"a"}  # b left rotation on an earlier pass
    plan = Plan(
        (StopReplica(b, "no request left on it"),), routable=frozenset({"a"}), settled=False
    )
    errors = apply_plan(engine, plan, config=CONFIG, observed=[a, b], render_ingress=_render)
    assert [e.action for e in errors] == [None]  # the ingress's failure, said
    assert engine.replicas["b"].stop_sent


class SlowStartEngine(ModelEngine):
    """Starts take a while; records how many were in flight at once."""

    def __init__(self) -> None:
        super().__init__([])
        self.lock = threading.Lock()
        self.in_flight = self.most = 0
        self.reconfigures_at_once = 0
        self.gate = threading.Barrier(6, timeout=5)

    def start_replica(self, spec: DeploymentSpec, index: int) -> None:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        threading.Event().wait(0.02)  # the model's start time
        with self.lock:
            self.in_flight -= 1
        super().start_replica(spec, index)

    def reconfigure(self, replica: ObservedReplica, spec: DeploymentSpec) -> None:
        self.gate.wait()  # all six at once, or the barrier breaks


def test_container_starts_are_bounded_but_reconfigures_are_not() -> None:
    engine = SlowStartEngine()
    olds = [_old(f"o{i}", i) for i in range(6)]
    starts = tuple(StartReplica(SPEC, i) for i in range(10, 22))
    reconfigures = tuple(ReconfigureReplica(r, SPEC) for r in olds)
    plan = Plan(starts + reconfigures, routable=frozenset(), settled=False)
    errors = apply_plan(
        engine, plan, config=CONFIG, observed=olds, render_ingress=_render, container_slots=3
    )
    assert errors == []
    assert len([c for c in engine.replicas if c.startswith("new-")]) == 12
    assert engine.most == 3  # bounded by the slots, though 8 workers were free
    assert default_container_slots() == min(8, max(2, 2 * (os.cpu_count() or 1)))
