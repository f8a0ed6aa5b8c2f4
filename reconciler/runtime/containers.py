"""What a replica or ingress container is made of: env, labels, healthcheck, host settings.

Pure functions of the spec; `docker_engine` turns them into API calls. Every container gets the
same hardening: no privileges, no capabilities, no privilege escalation, a pid limit, the
`nobody` user, and never a host path.
"""

from __future__ import annotations

import math
from typing import Any

from reconciler.model import DeploymentSpec, canonical_json
from reconciler.runtime import labels

REPLICA_PORT = 8000
ROUTER_PORT = 8001
USER = "65534:65534"
REPLICA_COMMAND = ["python3", "-m", "serve_replica"]
PROBE_COMMAND = ["CMD", "python3", "-S", "-I", "/opt/serve/probe.py"]
INGRESS_CFG_DIR = "/etc/haproxy"
INGRESS_CFG = f"{INGRESS_CFG_DIR}/serve.cfg"
INGRESS_COMMAND = ["haproxy", "-W", "-db", "-f", INGRESS_CFG]
HARDENING: dict[str, Any] = {
    "privileged": False,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "pids_limit": 256,
}
PROBE_MARGIN_S = 2.0
_NS = 1_000_000_000
_MIN_NS = 1_000_000  # Docker rejects healthcheck durations under 1 ms


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
    }


def replica_env(spec: DeploymentSpec, index: int, router_url: str) -> dict[str, str]:
    """The user's env vars, then ours (ours win: the runtime depends on them)."""
    user = dict(spec.env)
    pythonpath = ":".join(p for p in ("/opt/serve", user.get("PYTHONPATH", "")) if p)
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
    }


def _ns(seconds: float) -> int:
    return max(_MIN_NS, int(seconds * _NS))


def healthcheck(spec: DeploymentSpec) -> dict[str, Any]:
    return {
        "test": PROBE_COMMAND,
        "interval": _ns(spec.health_check_period_s),
        # Later than the replica's own timeout (the probe waits one second more): a hung
        # check_health() is reported in the user's words, not as Docker's "exceeded timeout".
        "timeout": _ns(spec.health_check_timeout_s + PROBE_MARGIN_S),
        "retries": 3,
        "start_period": _ns(spec.health_check_timeout_s),
    }


def resource_limits(spec: DeploymentSpec) -> dict[str, Any]:
    r = spec.resources
    limits: dict[str, Any] = {}
    if r.num_cpus > 0:
        limits["nano_cpus"] = int(r.num_cpus * _NS)
    if r.memory:
        limits["mem_limit"] = int(r.memory)
    if r.num_gpus > 0:
        limits["device_requests"] = [
            {"Driver": "", "Count": math.ceil(r.num_gpus), "Capabilities": [["gpu"]]}
        ]
    return limits


def replica_host_config(spec: DeploymentSpec, network: str, publish_host: str) -> dict[str, Any]:
    """Keyword arguments of the low-level `create_host_config`."""
    return {
        **HARDENING,
        **resource_limits(spec),
        "network_mode": network,
        "port_bindings": {REPLICA_PORT: (publish_host,)},
    }


def ingress_host_config(network: str, host: str, port: int) -> dict[str, Any]:
    return {**HARDENING, "network_mode": network, "port_bindings": {REPLICA_PORT: (host, port)}}
