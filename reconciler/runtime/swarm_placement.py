"""The room a swarm offers, for admission: the sum over the nodes that are ready and available
(a lost or drained node holds nothing new). Each node says its cores and memory
(`Description.Resources`; on a lab of several daemons on one machine each says the whole
machine); GPUs and other kinds are the generic resources its daemon advertises
(`--node-generic-resource gpu=GPU-0`, named or counted). Swarm's scheduler still decides which
node takes a replica: a replica that fits the sum but no single node waits as pending, with
Swarm's reason in the status. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.model import Capacity
from reconciler.settings import HostLimits

NS = 1_000_000_000


def available(node: dict[str, Any]) -> bool:
    status, spec = node.get("Status") or {}, node.get("Spec") or {}
    return status.get("State") == "ready" and spec.get("Availability", "active") == "active"


def generic_resources(node: dict[str, Any]) -> dict[str, float]:
    """Kind -> amount a node advertises (a named resource counts one per name)."""
    found: dict[str, float] = {}
    resources = (node.get("Description") or {}).get("Resources") or {}
    for entry in resources.get("GenericResources") or ():
        named, discrete = entry.get("NamedResourceSpec"), entry.get("DiscreteResourceSpec")
        if named:
            found[named["Kind"]] = found.get(named["Kind"], 0.0) + 1
        elif discrete:
            found[discrete["Kind"]] = found.get(discrete["Kind"], 0.0) + float(discrete["Value"])
    return found


def capacity_of(nodes: Iterable[dict[str, Any]], limits: HostLimits) -> Capacity:
    cores, memory = 0.0, 0
    kinds: dict[str, float] = {}
    for node in nodes:
        if not available(node):
            continue
        resources = (node.get("Description") or {}).get("Resources") or {}
        cores += float(resources.get("NanoCPUs") or 0) / NS
        memory += int(resources.get("MemoryBytes") or 0)
        for kind, amount in generic_resources(node).items():
            kinds[kind] = kinds.get(kind, 0.0) + amount
    gpus = kinds.pop("gpu", 0.0)
    return Capacity(
        cores=cores,
        cpus=cores * limits.cpu_overcommit,
        memory=int(memory * limits.memory_overcommit),
        gpus=gpus,
        custom=tuple(sorted(kinds.items())),
        max_replicas=limits.replica_cap(cores),
    )
