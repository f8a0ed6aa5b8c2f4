"""Admission: what fits the host's room, counted from what holds some (pure)."""

from __future__ import annotations

from test_plan import config, rep, spec

from reconciler import admission
from reconciler.model import Capacity, Demand, ReplicaState, Resources
from reconciler.plan import plan

HOST = Capacity(cores=2, cpus=8.0, memory=4 << 30, max_replicas=20)


def test_ten_tenths_fit_in_one_cpu() -> None:
    budget = admission.Budget(replace_cpus(HOST, 1.0), (), {})
    assert budget.take(Demand(cpus=0.1), 12) == 10  # not 9: a float sum is not below 1.0


def replace_cpus(c: Capacity, cpus: float) -> Capacity:
    return Capacity(c.cores, cpus, c.memory, c.gpus, c.custom, c.max_replicas)


def test_every_resource_and_the_replica_cap_bound_what_starts() -> None:
    budget = admission.Budget(HOST, (), {})
    assert budget.fitting(Demand(cpus=1), 100) == 8
    assert budget.fitting(Demand(cpus=0.01, memory=1 << 30), 100) == 4
    assert budget.fitting(Demand(cpus=0), 100) == 20  # the cap
    assert budget.fitting(Demand(gpus=1), 5) == 0  # this host was told of no GPU


def test_live_replicas_hold_room_whatever_their_deployment() -> None:
    s = spec(n=3, resources=Resources(num_cpus=2.0))
    held = [rep(s, i, state) for i, state in enumerate((ReplicaState.RUNNING,
            ReplicaState.STARTING, ReplicaState.STOPPING, ReplicaState.FAILED))]  # fmt: skip
    budget = admission.Budget(HOST, held, {s.key: admission.demand(s)})
    assert budget.cpus == 8.0 - 3 * 2.0  # the FAILED one is gone already
    # a replica started by an older reconciler of a deployment no longer configured: 1 CPU
    orphan = rep(spec(name="Gone"), 0)
    assert admission.Budget(HOST, [orphan], {}).cpus == 7.0


def test_custom_resources_count_only_where_the_host_has_them() -> None:
    declared = Capacity(2, 8.0, 4 << 30, custom=(("TPU", 2.0),), max_replicas=20)
    budget = admission.Budget(declared, (), {})
    assert budget.fitting(Demand(cpus=0, custom=(("TPU", 1.0),)), 5) == 2
    assert budget.fitting(Demand(cpus=0, custom=(("head", 0.01),)), 5) == 5  # reserves nothing
    assert budget.never_fits(Demand(custom=(("TPU", 3.0),)))
    assert not budget.never_fits(Demand(custom=(("head", 3.0),)))


def test_room_after_release() -> None:
    full = admission.Budget(replace_cpus(HOST, 2.0), [], {})
    full.take(Demand(cpus=1), 2)
    assert full.fitting(Demand(cpus=1), 1) == 0
    assert full.fits_after_release(Demand(cpus=1), [Demand(cpus=1)])
    assert not full.fits_after_release(Demand(cpus=3), [Demand(cpus=1), Demand(cpus=1)])


def test_the_plan_starts_what_fits_and_says_what_waits() -> None:
    s = spec(n=10, resources=Resources(num_cpus=1.0))
    p = plan(config(s), [], {}, 0.0, HOST)
    assert len(p.actions) == 8 and p.pending[s.key].count == 2
    assert p.pending[s.key].demand == Demand(cpus=1.0)
    assert plan(config(s), [], {}, 0.0).pending == {}  # no capacity given (diff): no admission


def test_descriptions() -> None:
    assert admission.describe(Demand(cpus=0.5, memory=256 << 20, gpus=1)) == (
        "CPU 0.5, memory 256 MiB, GPU 1"
    )
    assert admission.describe_capacity(HOST) == "CPU 8, memory 4 GiB"
