"""What a replica or ingress container is made of: env, labels, host settings.

Pure functions of the spec; `docker_engine` turns them into API calls. Every container gets the
same hardening: no privileges, no capabilities, no privilege escalation, a pid limit, the
`nobody` user, and never a host path.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from reconciler import admission, naming
from reconciler.model import Demand, DeploymentSpec, canonical_json
from reconciler.runtime import labels
from reconciler.runtime.secret_env import SECRET_ENV_FILE, split_env

REPLICA_PORT = 8000
DEPS_DIR = "/opt/serve-deps"  # where an image's runtime_env.pip packages are installed
ROUTER_PORT = 8001
ADMIN_PORT = 8404  # the ingress's HAProxy runtime API (routing.ADMIN_PORT), on --publish-host
_RUNTIME_NAMES = frozenset({"PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
USER = "65534:65534"
REPLICA_COMMAND = ["python3", "-m", "serve_replica"]
# The reconciler checks health itself (runtime/health.py); an image's own HEALTHCHECK would judge
# the replica by another rule and cost a `runc exec` every period, so it is switched off.
NO_IMAGE_HEALTHCHECK = {"test": ["NONE"]}
INGRESS_CFG_DIR = "/etc/haproxy"
INGRESS_CFG = f"{INGRESS_CFG_DIR}/serve.cfg"
INGRESS_COMMAND = ["haproxy", "-W", "-db", "-f", INGRESS_CFG]
HARDENING: dict[str, Any] = {
    "privileged": False,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "pids_limit": 256,
}
_NS = 1_000_000_000


def base_labels(instance: str, role: str) -> dict[str, str]:
    return {labels.MANAGED: "true", labels.OWNER: instance, labels.ROLE: role}


def replica_labels(instance: str, spec: DeploymentSpec, index: int) -> dict[str, str]:
    return {
        **base_labels(instance, "replica"),
        labels.APP: spec.app,
        labels.DEPLOYMENT: spec.name,
        labels.REPLICA: str(index),
        labels.VERSION: spec.version,
        labels.USER_CONFIG: spec.user_config_hash,
        labels.HEALTH_CHECK_PERIOD: repr(spec.health_check_period_s),
        labels.HEALTH_CHECK_TIMEOUT: repr(spec.health_check_timeout_s),
        labels.DEMAND: demand_label(admission.demand(spec)),
    }


def demand_label(d: Demand) -> str:
    return canonical_json([d.cpus, d.memory, d.gpus, [list(c) for c in d.custom]])


def demand_from_label(text: str | None) -> Demand | None:
    """The demand a replica was created with; None when absent or unreadable (an older
    reconciler made it)."""
    if not text:
        return None
    try:
        cpus, memory, gpus, custom = json.loads(text)
        return Demand(
            cpus=float(cpus),
            memory=int(memory),
            gpus=float(gpus),
            custom=tuple((str(k), float(v)) for k, v in custom),
        )
    except (ValueError, TypeError):
        return None


def health_settings(container_labels: dict[str, str]) -> tuple[float, float]:
    """(period, timeout) of the health check a replica was created with; Serve's defaults for
    a container that does not say (one made by an older reconciler)."""
    try:
        period = float(container_labels.get(labels.HEALTH_CHECK_PERIOD, "10"))
        timeout = float(container_labels.get(labels.HEALTH_CHECK_TIMEOUT, "30"))
    except ValueError:
        return 10.0, 30.0
    ok = math.isfinite(period) and math.isfinite(timeout) and period > 0 and timeout > 0
    return (period, timeout) if ok else (10.0, 30.0)


def replica_env(spec: DeploymentSpec, index: int, router_url: str) -> dict[str, str]:
    """The user's plain env vars, then ours (ours win: the runtime depends on them). Secret
    values are not here: they go in a file (`replica_secrets`)."""
    user = split_env(spec)[0]
    # The runtime first (its `ray` shim), then the packages of runtime_env.pip (absent in an
    # image built without any: harmless), then the user's own entries.
    pythonpath = ":".join(p for p in ("/opt/serve", DEPS_DIR, user.get("PYTHONPATH", "")) if p)
    return {
        "HOME": "/tmp",
        **user,
        "PYTHONPATH": pythonpath,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "SERVE_APP": spec.app,
        "SERVE_DEPLOYMENT": spec.name,
        "SERVE_REPLICA": str(index),
        "SERVE_IMPORT_PATH": spec.import_path,
        "SERVE_ARGS": spec.args,
        "SERVE_USER_CONFIG": canonical_json(spec.user_config),
        "SERVE_USER_CONFIG_HASH": spec.user_config_hash,
        "SERVE_MAX_ONGOING_REQUESTS": str(spec.max_ongoing_requests),
        "SERVE_GRACEFUL_SHUTDOWN_WAIT_LOOP_S": str(spec.graceful_shutdown_wait_loop_s),
        "SERVE_GRACEFUL_SHUTDOWN_TIMEOUT_S": str(spec.graceful_shutdown_timeout_s),
        "SERVE_HEALTH_CHECK_TIMEOUT_S": str(spec.health_check_timeout_s),
        "SERVE_ROUTER_URL": router_url,
        "SERVE_HTTP_PORT": str(REPLICA_PORT),
        # always ours, empty without secrets: a user's own value must not name a file to load
        "SERVE_SECRET_ENV_FILE": SECRET_ENV_FILE if replica_secrets(spec) else "",
    }


def replica_secrets(spec: DeploymentSpec) -> dict[str, str]:
    """The secret env values the replica loads from its file. Names the runtime sets itself
    are left out, as they are for plain values (ours win), so a secret cannot move the
    replica's port or import path."""
    return {k: v for k, v in split_env(spec)[1].items() if not _runtime_owned(k)}


def _runtime_owned(name: str) -> bool:
    return name.startswith("SERVE_") or name in _RUNTIME_NAMES


def resource_limits(spec: DeploymentSpec, hard: bool = False) -> dict[str, Any]:
    """Ray's logical resources on Docker. `num_cpus` weighs the replica's CPU share (1024 per
    CPU, Docker's default weight for one container) and `memory` is a soft reservation: like
    Ray, they reserve room (admission counts them) but cap nothing, so `num_cpus: 0.05` does not
    throttle a replica to a twentieth of a core. With `hard`, they are also a CPU quota and a
    memory limit. GPUs are always a device request."""
    r = spec.resources
    limits: dict[str, Any] = {}
    if r.num_cpus > 0:
        limits["cpu_shares"] = max(2, round(r.num_cpus * 1024))
        if hard:
            limits["nano_cpus"] = int(r.num_cpus * _NS)
    if r.memory:
        limits["mem_limit" if hard else "mem_reservation"] = int(r.memory)
    if r.num_gpus > 0:
        limits["device_requests"] = [
            {"Driver": "", "Count": math.ceil(r.num_gpus), "Capabilities": [["gpu"]]}
        ]
    return limits


def replica_host_config(
    spec: DeploymentSpec, network: str, publish_host: str, hard_limits: bool = False
) -> dict[str, Any]:
    """Keyword arguments of the low-level `create_host_config`."""
    return {
        **HARDENING,
        **resource_limits(spec, hard_limits),
        "network_mode": network,
        "port_bindings": {REPLICA_PORT: (publish_host,)},
    }


@dataclass(frozen=True)
class Bridge:
    """The instance network's IPv4 gateway (the host's address on it) and subnet."""

    gateway: str = ""
    subnet: str = ""


def bridge_of(network: dict[str, Any]) -> Bridge:
    """From `docker network inspect` (empty fields: it has no IPv4 pool)."""
    for pool in (network.get("IPAM") or {}).get("Config") or []:
        subnet = str(pool.get("Subnet") or "")
        if subnet and ":" not in subnet:
            return Bridge(str(pool.get("Gateway") or "").split("/")[0], subnet)
    return Bridge()


class InstanceNames:
    """The names of what an engine makes for its instance (`_instance`, set by the engine): the
    same on one host and on a swarm, so a replica finds the router either way."""

    _instance: str

    @property
    def network_name(self) -> str:
        return naming.network_name(self._instance)

    @property
    def ingress_name(self) -> str:
        return naming.ingress_name(self._instance)

    @property
    def router_url(self) -> str:
        return f"http://{self.ingress_name}:{ROUTER_PORT}"
