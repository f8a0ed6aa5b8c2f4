"""From one reading of the swarm (our services, their tasks, the nodes) to `ObservedReplica`s,
with the per-task caches that keep an idle pass free of HTTP calls and log reads.

A replica is its service; what it is doing is the service's task Swarm wants running (the
newest with desired state running, or ready: a restart waiting out its delay). Its identity in
the pass (`container_id`) is that task's ID: a task Swarm replaced (a restart, a move off a lost
node) is a new replica instance, with a new address, seen ready afresh.

Mapping (service and task -> ReplicaState):
  drain deadline label                 -> STOPPING (deadline; 0 once it has no task left)
  no task wanted running               -> FAILED, the last task's error (Swarm restarted it once
                                          already, or was told not to: the reconciler's turn)
  its node is not ready                -> STARTING, waiting: the node is lost, Swarm moves it
                                          (never RUNNING: a lost node's last report is stale)
  not running yet                      -> STARTING; waiting when Swarm says why (no node fits:
                                          "no suitable node ..."), or when it is being moved
  running, failing health checks       -> UNHEALTHY, the user's check_health() error
  running, created with another token  -> UNHEALTHY (the reconciler's token file was lost)
  running otherwise                    -> RUNNING once GET /-/ready answered 200, else STARTING
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.model import EngineNode, ObservedReplica, ReplicaState
from reconciler.runtime import control, errortext, labels
from reconciler.runtime.containers import REPLICA_PORT, demand_from_label, health_settings
from reconciler.runtime.health import HealthMonitor

Json = dict[str, Any]
LogReader = Callable[[str], str]  # task id -> log tail
TERMINAL = frozenset({"complete", "shutdown", "failed", "rejected", "remove", "orphaned"})
_WANTED = frozenset({"running", "ready"})
OTHER_TOKEN = (
    "it was started with another control token (the reconciler's token file was replaced), so "
    "it no longer answers the reconciler; it is replaced"
)


def created(obj: Json) -> tuple[str, str]:
    """Sort key of a task or service by creation (RFC 3339 text, fraction padded)."""
    stamp = str(obj.get("CreatedAt", ""))
    head, _, rest = stamp.partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    return head, digits.ljust(9, "0")


@dataclass(frozen=True)
class Reading:
    """One reading of the swarm: our services by ID, their tasks (newest first) and the nodes."""

    services: Mapping[str, Json]
    tasks: Mapping[str, Sequence[Json]]
    nodes: Mapping[str, Json] = field(default_factory=dict)

    @classmethod
    def of(cls, services: list[Json], tasks: list[Json], nodes: list[Json]) -> Reading:
        by_service: dict[str, list[Json]] = {}
        for task in sorted(tasks, key=created, reverse=True):
            by_service.setdefault(str(task.get("ServiceID")), []).append(task)
        return cls({s["ID"]: s for s in services}, by_service, {str(n["ID"]): n for n in nodes})

    def wanted(self, service_id: str) -> Json | None:
        """The task Swarm wants running for this service, if any."""
        for task in self.tasks.get(service_id, ()):
            if task.get("DesiredState") in _WANTED and _state(task) not in TERMINAL:
                return task
        return None

    def node_ready(self, node_id: str | None) -> bool:
        node = self.nodes.get(node_id or "")
        return node is not None and (node.get("Status") or {}).get("State") == "ready"

    def node_address(self, node_id: str) -> str | None:
        node = self.nodes.get(node_id) or {}
        return (node.get("Status") or {}).get("Addr") or None

    def node_name(self, node_id: str) -> str:
        node = self.nodes.get(node_id) or {}
        return str((node.get("Description") or {}).get("Hostname") or node_id[:12])

    def describe_node(self, node_id: str) -> str:
        """`name (address) is down: heartbeat failure`, as far as the manager says."""
        node = self.nodes.get(node_id) or {}
        status = node.get("Status") or {}
        name = self.node_name(node_id)
        text = f"{name} ({status.get('Addr', '?')}) is {status.get('State', 'unknown')}"
        return f"{text}: {status['Message']}" if status.get("Message") else text


def _state(task: Json) -> str:
    return str((task.get("Status") or {}).get("State", ""))


def engine_nodes(reading: Reading, running_on: Mapping[str, int]) -> tuple[EngineNode, ...]:
    """The nodes for the status, by name; `running_on` counts our running replicas per node."""
    out = []
    for node_id, node in reading.nodes.items():
        status, spec = node.get("Status") or {}, node.get("Spec") or {}
        ready = status.get("State") == "ready" and spec.get("Availability", "active") == "active"
        availability = spec.get("Availability", "active")
        message = status.get("Message") or ("" if availability == "active" else availability)
        out.append(
            EngineNode(
                name=(node.get("Description") or {}).get("Hostname") or node_id[:12],
                address=status.get("Addr", ""),
                state=status.get("State", "unknown"),
                ready=ready,
                message=message,
                role=spec.get("Role", ""),
                replicas=running_on.get(node_id, 0),
            )
        )
    return tuple(sorted(out, key=lambda n: n.name))


def control_port(task: Json) -> int | None:
    """The host port the task's control port is published on (listed once per address family,
    with the same number)."""
    ports = ((task.get("Status") or {}).get("PortStatus") or {}).get("Ports") or []
    for port in ports:
        if port.get("TargetPort") == REPLICA_PORT and port.get("PublishedPort"):
            return int(port["PublishedPort"])
    return None


def overlay_address(task: Json, network_id: str | None) -> str | None:
    """The task's address on our overlay (what HAProxy reaches it at)."""
    for attachment in task.get("NetworksAttachments") or ():
        net = attachment.get("Network") or {}
        if network_id is not None and net.get("ID") != network_id:
            continue
        for cidr in attachment.get("Addresses") or ():
            try:
                return str(ipaddress.ip_interface(cidr).ip)
            except ValueError:
                continue
    return None


class SwarmObserver:
    """Caches keyed by task ID: readiness seen, user_config hash, failure text."""

    def __init__(self, *, token: str, token_id: str, logs: LogReader, monitor: HealthMonitor):
        self._token, self._token_id = token, token_id
        self._logs, self._monitor = logs, monitor
        self._lock = threading.Lock()
        self._ready: set[str] = set()
        self._hashes: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self.network_id: str | None = None  # our overlay's ID, once known
        # what the last observe() saw: replica id -> (its service, the task it stands for)
        self.seen: dict[str, tuple[Json, Json | None]] = {}

    def remember_hash(self, task_id: str, config_hash: str) -> None:
        with self._lock:
            self._hashes[task_id] = config_hash

    def observe(self, reading: Reading, replicas: Sequence[Json]) -> list[ObservedReplica]:
        observed, seen = [], {}
        for service in replicas:
            replica = self._replica(reading, service)
            observed.append(replica)
            seen[replica.container_id] = (service, reading.wanted(service["ID"]))
        self.seen = seen
        live = set(seen)
        with self._lock:
            self._ready &= live
            for cache in (self._hashes, self._errors):
                for tid in set(cache) - live:
                    del cache[tid]
        self._monitor.retain(
            r.container_id
            for r in observed
            if r.state in (ReplicaState.STARTING, ReplicaState.RUNNING, ReplicaState.UNHEALTHY)
        )
        return observed

    def _replica(self, reading: Reading, service: Json) -> ObservedReplica:
        spec = service.get("Spec") or {}
        lab = spec.get("Labels") or {}
        task = reading.wanted(service["ID"])
        history = reading.tasks.get(service["ID"], ())
        url = self._url(reading, task)
        state, deadline, waiting, error = self._classify(reading, service, task, history, url)
        tid = str(task["ID"]) if task else (str(history[0]["ID"]) if history else service["ID"])
        return ObservedReplica(
            container_id=tid,
            name=str(spec.get("Name", "")),
            app=lab.get(labels.APP, ""),
            deployment=lab.get(labels.DEPLOYMENT, ""),
            index=int(lab.get(labels.REPLICA, "0") or 0),
            version=lab.get(labels.VERSION, ""),
            state=state,
            user_config_hash=self._config_hash(tid, state, url, lab),
            control_url=url,
            network_ip=overlay_address(task, self.network_id) if task else None,
            created_at=_unix(task or service),
            demand=demand_from_label(lab.get(labels.DEMAND)),
            drain_deadline=deadline,
            error=error,
            waiting=waiting,
        )

    def _url(self, reading: Reading, task: Json | None) -> str | None:
        if task is None or _state(task) != "running" or not reading.node_ready(task.get("NodeID")):
            return None
        port, host = control_port(task), reading.node_address(str(task.get("NodeID")))
        return control.base_url(host, port) if port and host else None

    def _classify(
        self,
        reading: Reading,
        service: Json,
        task: Json | None,
        history: Sequence[Json],
        url: str | None,
    ) -> tuple[ReplicaState, float | None, str | None, str | None]:
        """(state, drain deadline, why it waits, error)."""
        lab = (service.get("Spec") or {}).get("Labels") or {}
        drain = _float(lab.get(labels.DRAIN_DEADLINE))
        if drain is not None:
            return ReplicaState.STOPPING, drain if task else 0.0, None, None
        if task is None:
            if not history:
                return ReplicaState.STARTING, None, None, None  # Swarm is making its task
            return ReplicaState.FAILED, None, None, self._failure(reading, history[0])
        node_id = str(task.get("NodeID") or "")
        if node_id and not reading.node_ready(node_id):
            lost = f"its node {reading.describe_node(node_id)}; Swarm moves it to another node"
            return ReplicaState.STARTING, None, lost, None
        if _state(task) != "running" or url is None:
            return ReplicaState.STARTING, None, _why_waiting(reading, task, history), None
        return self._running(task, url, lab)

    def _running(
        self, task: Json, url: str, lab: Mapping[str, str]
    ) -> tuple[ReplicaState, float | None, str | None, str | None]:
        tid = str(task["ID"])
        if lab.get(labels.TOKEN_ID, self._token_id) != self._token_id:
            return ReplicaState.UNHEALTHY, None, None, OTHER_TOKEN
        failing = self._monitor.verdict(tid)
        if failing is not None:
            return ReplicaState.UNHEALTHY, None, None, failing
        period, timeout = health_settings(dict(lab))
        self._monitor.watch(tid, url, period, timeout, start_period_s=timeout)
        if not self._is_ready(tid, url):
            return ReplicaState.STARTING, None, None, None
        return ReplicaState.RUNNING, None, None, None

    def _is_ready(self, tid: str, url: str) -> bool:
        with self._lock:
            if tid in self._ready:
                return True
        if not control.is_ready(url):
            return False
        with self._lock:
            self._ready.add(tid)
        return True

    def _failure(self, reading: Reading, task: Json) -> str:
        tid = str(task["ID"])
        with self._lock:
            known = self._errors.get(tid)
        if known is None:
            known = _task_error(reading, task, self._logs)
            with self._lock:
                self._errors[tid] = known
        return known

    def _config_hash(
        self, tid: str, state: ReplicaState, url: str | None, lab: Mapping[str, str]
    ) -> str | None:
        with self._lock:
            if tid in self._hashes:
                return self._hashes[tid]
        if state not in (ReplicaState.RUNNING, ReplicaState.STARTING) or url is None:
            return None
        reported = control.state(url, token=self._token)  # once per task: adoption learns it
        if reported is None or not reported.get("user_config_hash"):
            return None
        self.remember_hash(tid, str(reported["user_config_hash"]))
        return str(reported["user_config_hash"])


def _why_waiting(reading: Reading, task: Json, history: Sequence[Json]) -> str | None:
    """Swarm's reason a task is not running yet, when it gives one (no node fits), and the lost
    node it is moving off, when it was moved."""
    status = task.get("Status") or {}
    reasons = []
    if status.get("Err") and _state(task) in ("pending", "new", "allocated"):
        reasons.append(f"{status['Err']}")
    moved_from = [
        t for t in history[1:] if t.get("NodeID") and not reading.node_ready(t.get("NodeID"))
    ]
    if moved_from:
        reasons.append(f"moved off node {reading.describe_node(str(moved_from[0]['NodeID']))}")
    return "; ".join(reasons) or None


def _task_error(reading: Reading, task: Json, logs: LogReader) -> str:
    """What ended a task, in the user's words when its log has them."""
    status = task.get("Status") or {}
    node_id = str(task.get("NodeID") or "")
    if node_id and not reading.node_ready(node_id):
        return f"its node {reading.describe_node(node_id)}, and Swarm did not move it"
    code = (status.get("ContainerStatus") or {}).get("ExitCode")
    text = logs(str(task["ID"])) if _state(task) in ("failed", "complete") else ""
    if text.strip():
        return errortext.user_error(text, int(code) if code is not None else None)
    return str(status.get("Err") or status.get("Message") or "the replica's task ended")


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def unix_time(stamp: Any) -> float:
    """An RFC 3339 time of the Engine API (nanoseconds, `Z`) as unix time; 0 when unreadable."""
    head, _, rest = str(stamp or "").rstrip("Z").partition(".")
    try:
        base = datetime.fromisoformat(head + "+00:00").timestamp()
    except ValueError:
        return 0.0
    digits = "".join(c for c in rest if c.isdigit())[:6]
    return base + (float(f"0.{digits}") if digits else 0.0)


def _unix(obj: Json) -> float:
    return unix_time(obj.get("CreatedAt"))
