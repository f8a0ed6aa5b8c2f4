"""One deployment as one pass sees it: its spec, its observed replicas sorted into the groups the
planner and the status both reason about, and its failure record. Both read the same view, so
the planner's "converged" and the status's HEALTHY cannot drift apart. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from reconciler.model import (
    DeploymentSpec,
    FailureRecord,
    ObservedReplica,
    ReplicaState,
    ServeConfig,
)

Key = tuple[str, str]

LIVE = (ReplicaState.STARTING, ReplicaState.RUNNING)


@dataclass(frozen=True)
class DeploymentView:
    """`replicas` are every container of the deployment, whatever their state or version;
    `failure` is the start-failure record of the current version (None otherwise)."""

    spec: DeploymentSpec
    replicas: tuple[ObservedReplica, ...]
    failure: FailureRecord | None = None

    @property
    def target(self) -> int:
        return self.spec.num_replicas

    @cached_property
    def live(self) -> tuple[ObservedReplica, ...]:
        """Starting or running, any version."""
        return tuple(r for r in self.replicas if r.state in LIVE)

    @cached_property
    def current(self) -> tuple[ObservedReplica, ...]:
        """Live at the spec's version."""
        return tuple(r for r in self.live if r.version == self.spec.version)

    @cached_property
    def old(self) -> tuple[ObservedReplica, ...]:
        """Live at another version: a rolling update is in progress."""
        return tuple(r for r in self.live if r.version != self.spec.version)

    @cached_property
    def running(self) -> tuple[ObservedReplica, ...]:
        """Current-version replicas that passed their readiness check."""
        return tuple(r for r in self.current if r.state is ReplicaState.RUNNING)

    @cached_property
    def in_sync(self) -> tuple[ObservedReplica, ...]:
        """Running replicas that run the spec's user_config."""
        wanted = self.spec.user_config_hash
        return tuple(r for r in self.running if r.user_config_hash == wanted)

    @cached_property
    def waiting(self) -> tuple[ObservedReplica, ...]:
        """Starting replicas the engine has no node for yet, any version (Swarm: no node has
        room, or their node was lost and they are being moved)."""
        return tuple(r for r in self.live if r.state is ReplicaState.STARTING and r.waiting)

    @cached_property
    def sick(self) -> tuple[ObservedReplica, ...]:
        """Current-version replicas failing their health checks."""
        return tuple(
            r
            for r in self.replicas
            if r.state is ReplicaState.UNHEALTHY and r.version == self.spec.version
        )

    def count(self, *states: ReplicaState) -> int:
        return sum(1 for r in self.replicas if r.state in states)

    @property
    def converged(self) -> bool:
        """Exactly the target, all running the current version and user_config, nothing else
        (no replica draining, failed or of an old version): the deployment is HEALTHY."""
        return len(self.in_sync) == self.target == len(self.replicas)


def group(observed: Iterable[ObservedReplica]) -> dict[Key, list[ObservedReplica]]:
    """Replicas by (app, deployment), each list in index order (names and ids break ties)."""
    groups: dict[Key, list[ObservedReplica]] = {}
    for replica in sorted(observed, key=lambda r: (r.key, r.index, r.name, r.container_id)):
        groups.setdefault(replica.key, []).append(replica)
    return groups


def views(
    config: ServeConfig,
    observed: Sequence[ObservedReplica],
    failures: Mapping[Key, FailureRecord],
) -> dict[Key, DeploymentView]:
    """One view per deployment of the config, in config order."""
    groups = group(observed)
    result: dict[Key, DeploymentView] = {}
    for spec in config.deployments():
        record = failures.get(spec.key)
        if record is not None and record.version != spec.version:
            record = None
        result[spec.key] = DeploymentView(spec, tuple(groups.get(spec.key, ())), record)
    return result


def orphans(
    config: ServeConfig, observed: Sequence[ObservedReplica]
) -> dict[Key, list[ObservedReplica]]:
    """Replicas of deployments (or whole applications) the config no longer has."""
    wanted = {spec.key for spec in config.deployments()}
    return {k: v for k, v in sorted(group(observed).items()) if k not in wanted}
