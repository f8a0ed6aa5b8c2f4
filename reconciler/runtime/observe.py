"""From one container list to `ObservedReplica`s, with the per-container caches that keep an idle
pass free of HTTP calls and log reads.

Mapping (Docker state and health text -> ReplicaState):
  name carries the drain marker  -> STOPPING (deadline from the name; 0 once it has exited)
  created                        -> STALE
  exited / dead                  -> FAILED, error from the log tail
  running, failing health checks -> UNHEALTHY, the user's check_health() error (see health.py)
  running "(unhealthy)"          -> UNHEALTHY, the last Docker HEALTHCHECK output (containers made
                                    by an older reconciler; new ones have Docker's switched off)
  running otherwise              -> RUNNING once GET /-/ready has answered 200, else STARTING;
                                    the health monitor checks it every period from first sight
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from reconciler import naming
from reconciler.model import ObservedReplica, ReplicaState
from reconciler.runtime import control, errortext, labels
from reconciler.runtime.containers import REPLICA_PORT, demand_from_label, health_settings
from reconciler.runtime.health import HealthMonitor

LogReader = Callable[[str], str]  # container id -> log tail
HealthReader = Callable[[str], str]  # container id -> last output of its Docker HEALTHCHECK

_ACTIVE = frozenset({"running", "restarting", "paused", "created"})


class Observer:
    """Caches keyed by container id: readiness seen, user_config hash, failure text."""

    def __init__(
        self,
        *,
        network: str,
        publish_host: str,
        logs: LogReader,
        health: HealthReader,
        monitor: HealthMonitor,
        router: Callable[[], str] = lambda: "bridge",
    ):
        """`router`: how replicas reach the ingress's router now (labels.ROUTER)."""
        self._network, self._router = network, router
        self._host = control.local_address(publish_host)
        self._logs, self._health, self._monitor = logs, health, monitor
        self._lock = threading.Lock()
        self._ready: set[str] = set()
        self._hashes: dict[str, str] = {}
        self._errors: dict[str, str] = {}

    def remember_hash(self, container_id: str, config_hash: str) -> None:
        with self._lock:
            self._hashes[container_id] = config_hash

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._ready.discard(container_id)
            self._hashes.pop(container_id, None)
            self._errors.pop(container_id, None)

    def observe(self, entries: list[dict[str, Any]]) -> list[ObservedReplica]:
        live = {e["Id"] for e in entries}
        with self._lock:
            self._ready &= live
            for cache in (self._hashes, self._errors):
                for cid in set(cache) - live:
                    del cache[cid]
        replicas = [self._replica(e) for e in entries]
        self._monitor.retain(
            r.container_id
            for r in replicas
            if r.state in (ReplicaState.STARTING, ReplicaState.RUNNING, ReplicaState.UNHEALTHY)
        )
        return replicas

    def control_url(self, entry: dict[str, Any]) -> str | None:
        return published_url(self._host, entry.get("Ports") or [])

    def _replica(self, entry: dict[str, Any]) -> ObservedReplica:
        cid, lab = entry["Id"], entry.get("Labels") or {}
        name = (entry.get("Names") or ["/"])[0].lstrip("/")
        url = self.control_url(entry)
        state, deadline, error = self._classify(entry, name, url)
        networks = (entry.get("NetworkSettings") or {}).get("Networks") or {}
        return ObservedReplica(
            container_id=cid,
            name=name,
            app=lab.get(labels.APP, ""),
            deployment=lab.get(labels.DEPLOYMENT, ""),
            index=int(lab.get(labels.REPLICA, "0") or 0),
            version=self._version(lab),
            state=state,
            user_config_hash=self._config_hash(cid, state, url, lab),
            control_url=url,
            network_ip=(networks.get(self._network) or {}).get("IPAddress") or None,
            created_at=float(entry.get("Created") or 0),
            demand=demand_from_label(lab.get(labels.DEMAND)),
            drain_deadline=deadline,
            error=error,
        )

    def _version(self, lab: dict[str, str]) -> str:
        """The replica's version; one that reaches the router another way than replicas now do
        (made before `--ingress-network` changed, or by an older reconciler) reads as another
        version, so a rolling update replaces it before its handle calls could fail."""
        version = lab.get(labels.VERSION, "")
        router = lab.get(labels.ROUTER) or "bridge"
        return version if router == self._router() else f"{version}~router:{router}"

    def _classify(
        self, entry: dict[str, Any], name: str, url: str | None
    ) -> tuple[ReplicaState, float | None, str | None]:
        docker_state, status = entry.get("State", ""), entry.get("Status", "")
        deadline = naming.drain_deadline(name)
        if deadline is not None:
            return ReplicaState.STOPPING, deadline if docker_state in _ACTIVE else 0.0, None
        if docker_state == "created":
            return ReplicaState.STALE, None, None
        if docker_state == "removing":
            return ReplicaState.STOPPING, 0.0, None
        if docker_state in ("exited", "dead"):
            return ReplicaState.FAILED, None, self._failure(entry["Id"], status)
        if docker_state == "paused":
            return ReplicaState.UNHEALTHY, None, "the container is paused"
        cid = entry["Id"]
        failing = self._monitor.verdict(cid)
        if failing is not None:
            return ReplicaState.UNHEALTHY, None, failing
        if "(unhealthy)" in status:
            return ReplicaState.UNHEALTHY, None, self._unhealthy(cid)
        if url is None:
            return ReplicaState.STARTING, None, None
        # Watched from the first sight, so a replica that hangs in __init__ is bounded too: its
        # failures count once the start period (the health check timeout) is over.
        period, timeout = health_settings(entry.get("Labels") or {})
        self._monitor.watch(cid, url, period, timeout, start_period_s=timeout)
        if not self._is_ready(cid, url):
            return ReplicaState.STARTING, None, None
        return ReplicaState.RUNNING, None, None

    def _is_ready(self, cid: str, url: str) -> bool:
        with self._lock:
            if cid in self._ready:
                return True
        if not control.is_ready(url):
            return False
        with self._lock:
            self._ready.add(cid)
        return True

    def _failure(self, cid: str, status: str) -> str:
        with self._lock:
            known = self._errors.get(cid)
        if known is None:
            known = errortext.user_error(self._logs(cid), errortext.exit_code(status))
            with self._lock:
                self._errors[cid] = known
        return known

    def _unhealthy(self, cid: str) -> str:
        output = self._health(cid).strip()
        return output or "Docker's HEALTHCHECK reports the container unhealthy"

    def _config_hash(
        self, cid: str, state: ReplicaState, url: str | None, lab: dict[str, str]
    ) -> str | None:
        with self._lock:
            if cid in self._hashes:
                return self._hashes[cid]
        if state is ReplicaState.STALE:
            return lab.get(labels.USER_CONFIG)
        if state not in (ReplicaState.RUNNING, ReplicaState.STARTING) or url is None:
            return None
        reported = control.state(url)  # once per replica: a restarted reconciler learns it here
        if reported is None or not reported.get("user_config_hash"):
            return None
        self.remember_hash(cid, str(reported["user_config_hash"]))
        return str(reported["user_config_hash"])


def published_url(host: str, ports: list[dict[str, Any]]) -> str | None:
    """The replica's control port as `host` reaches it, from a container list entry's `Ports`."""
    port = published_port(host, ports, REPLICA_PORT)
    return control.base_url(host, port) if port is not None else None


def published_port(host: str, ports: list[dict[str, Any]], private: int) -> int | None:
    """The host port `private` is published on, from a container list entry's `Ports`.
    Published on a wildcard, Docker may give IPv4 and IPv6 different host ports (moby#42442):
    the entry of `host`'s address family is taken."""
    published = [p for p in ports if p.get("PrivatePort") == private and p.get("PublicPort")]
    v6 = ":" in host
    ours = [p for p in published if (":" in str(p.get("IP") or "")) == v6] or published
    return int(ours[0]["PublicPort"]) if ours else None
