"""Admission: a replica is started only while what it asks for fits what the host has left, as
Ray's scheduler leaves an actor pending until a node has its resources. Pure.

What a replica asks for is Ray's logical resources (`num_cpus`, Serve's default 1; `memory`,
default 0; `num_gpus`; custom `resources`). What the host has is a `Capacity` (the engine's
cores times an overcommit factor, its memory, the GPUs and custom resources the reconciler was
told about, and a cap on the instance's replicas). Every live container of the instance counts
against it, draining ones included (they still run), whatever its deployment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from reconciler.model import Capacity, Demand, DeploymentSpec, ObservedReplica, ReplicaState

_HOLDING = (
    ReplicaState.STARTING,
    ReplicaState.RUNNING,
    ReplicaState.UNHEALTHY,
    ReplicaState.STOPPING,
)
_EPSILON = 1e-9  # 10 x 0.1 CPUs must fit in 1.0


def held_by(replica: ObservedReplica, demands: Mapping[tuple[str, str], Demand]) -> Demand:
    """What a running replica holds: what it was started with, else what its deployment asks
    now, else (a deployment gone from the config, made by an older reconciler) Serve's
    default of one CPU."""
    return replica.demand or demands.get(replica.key) or Demand(cpus=1.0)


def demand(spec: DeploymentSpec) -> Demand:
    r = spec.resources
    return Demand(
        cpus=max(0.0, r.num_cpus),
        memory=max(0, r.memory or 0),
        gpus=max(0.0, r.num_gpus),
        custom=tuple(sorted((k, v) for k, v in r.custom if v > 0)),
    )


class Budget:
    """What is left of a capacity after the replicas that hold some; `take` spends it."""

    def __init__(
        self,
        capacity: Capacity,
        observed: Iterable[ObservedReplica],
        demands: Mapping[tuple[str, str], Demand],
    ) -> None:
        self.capacity = capacity
        self.cpus, self.memory, self.gpus = capacity.cpus, capacity.memory, capacity.gpus
        self.custom = dict(capacity.custom)
        self.replicas = capacity.max_replicas
        for replica in observed:
            if replica.state in _HOLDING:
                self._spend(held_by(replica, demands), 1)

    def _spend(self, d: Demand, n: int) -> None:
        self.cpus -= d.cpus * n
        self.memory -= d.memory * n
        self.gpus -= d.gpus * n
        for name, amount in d.custom:
            if name in self.custom:
                self.custom[name] -= amount * n
        self.replicas -= n

    def fitting(self, d: Demand, wanted: int) -> int:
        """How many of `wanted` replicas asking `d` each fit now (0 to wanted). A custom
        resource the host was not told about reserves nothing (Docker has none to count)."""
        limits = [self.replicas, wanted]
        for free, need in ((self.cpus, d.cpus), (self.memory, d.memory), (self.gpus, d.gpus)):
            if need > 0:
                limits.append(math.floor((free + _EPSILON) / need))
        for name, need in d.custom:
            if name in self.custom:
                limits.append(math.floor((self.custom[name] + _EPSILON) / need))
        return max(0, min(limits))

    def take(self, d: Demand, wanted: int) -> int:
        """Admit as many of `wanted` as fit; return that number."""
        n = self.fitting(d, wanted)
        self._spend(d, n)
        return n

    def free(self) -> Demand:
        return Demand(
            cpus=max(0.0, self.cpus),
            memory=max(0, self.memory),
            gpus=max(0.0, self.gpus),
            custom=tuple(sorted((k, max(0.0, v)) for k, v in self.custom.items())),
        )

    def fits_after_release(self, d: Demand, released: Iterable[Demand]) -> bool:
        """Would one replica asking `d` fit once the `released` replicas are gone?"""
        trial = Budget(self.capacity, (), {})
        trial.cpus, trial.memory, trial.gpus = self.cpus, self.memory, self.gpus
        trial.custom, trial.replicas = dict(self.custom), self.replicas
        for r in released:
            trial._spend(r, -1)
        return trial.fitting(d, 1) == 1

    def never_fits(self, d: Demand) -> bool:
        """Even an empty host could not hold one such replica."""
        c = self.capacity
        over = d.cpus > c.cpus + _EPSILON or d.memory > c.memory or d.gpus > c.gpus + _EPSILON
        have = dict(c.custom)
        return over or any(
            name in have and need > have[name] + _EPSILON for name, need in d.custom
        )


def describe(d: Demand) -> str:
    """`CPU 0.5, memory 256 MiB, GPU 1, TPU 4` (what is zero is left out; CPU always shown)."""
    parts = [f"CPU {_number(d.cpus)}"]
    if d.memory:
        parts.append(f"memory {_bytes(d.memory)}")
    if d.gpus:
        parts.append(f"GPU {_number(d.gpus)}")
    parts.extend(f"{name} {_number(v)}" for name, v in d.custom)
    return ", ".join(parts)


def describe_capacity(c: Capacity) -> str:
    parts = [f"CPU {_number(c.cpus)}", f"memory {_bytes(c.memory)}"]
    if c.gpus:
        parts.append(f"GPU {_number(c.gpus)}")
    parts.extend(f"{name} {_number(v)}" for name, v in c.custom)
    return ", ".join(parts)


def _number(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") or "0"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{_number(size)} {unit}"
        size /= 1024
    return f"{n} B"
