"""What a Serve replica, and the ingress, are made of on Docker Swarm: the service specs as the
Engine API takes them (`POST /services/create`). Pure: no I/O.

One service per replica (replicated, one task), named as the single host names the replica's
container (`service_name` keeps it a name Swarm accepts):
- service labels: ownership and what the replica is (`containers.replica_labels`). Never labels
  in the task template: any change there replaces the task, while a change of service labels
  does not; the drain deadline goes there (a service cannot be renamed);
- the task template: the image pinned by digest; the env, without secrets; the control token
  and the secret env values as Swarm secrets (files, never Env); num_cpus and memory as
  reservations that Swarm's scheduler places by (limits only with --hard-limits), num_gpus and
  custom resources as generic resources; the attachable overlay; a restart policy that restarts
  a failed task once, after 1 s (that is how Swarm moves a lost node's replicas; a replica that
  fails again is the reconciler's to count and back off, as on one host);
- the endpoint: dnsrr (a VIP needs IPVS), the control port published in host mode on an
  ephemeral port of the task's node.

The ingress is one global service (a task on every node): HAProxy, its configuration as a Swarm
config, the http port published in host mode on every node, and the admin gate (the token in
front of HAProxy's runtime API, replica/admin_gate.py) on an ephemeral host port.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from reconciler.model import DeploymentSpec
from reconciler.runtime import containers, labels

NS = 1_000_000_000
REPLICA_RESTART = {"Condition": "on-failure", "Delay": NS, "MaxAttempts": 1}
INGRESS_RESTART = {"Condition": "any", "Delay": NS, "MaxAttempts": 0}
# A route change replaces the ingress's tasks one node at a time; a node's own task must stop
# before the next binds the same host port (start-first cannot), the other nodes keep serving.
INGRESS_UPDATE = {
    "Parallelism": 1,
    "Delay": 0,
    "FailureAction": "continue",
    "Monitor": 2 * NS,
    "Order": "stop-first",
}
PIDS_LIMIT = containers.HARDENING["pids_limit"]
SECRETS_DIR = "/run/serve-secrets"
TOKEN_FILE = f"{SECRETS_DIR}/control-token"
GATE_PORT = 8405  # the admin gate, in front of HAProxy's runtime API (unix socket)
GATE_FILE = f"{containers.INGRESS_CFG_DIR}/admin_gate.py"
ADMIN_SOCKET = "/tmp/haproxy.sock"  # routing.STATS_SOCKET: where the gate relays to
_SERVICE_NAME = re.compile(r"^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")
SERVICE_NAME_MAX = 63
OBJECT_NAME_MAX = 64
_UID = containers.USER.split(":")[0]


@dataclass(frozen=True)
class FileRef:
    """A Swarm secret or config (by ID and name) as a file in the task's container."""

    id: str
    name: str
    path: str
    mode: int = 0o400

    def secret(self) -> dict[str, Any]:
        return {"SecretID": self.id, "SecretName": self.name, "File": self._file()}

    def config(self) -> dict[str, Any]:
        return {"ConfigID": self.id, "ConfigName": self.name, "File": self._file()}

    def _file(self) -> dict[str, Any]:
        return {"Name": self.path, "UID": _UID, "GID": _UID, "Mode": self.mode}


def service_name(name: str) -> str:
    """`name` if Swarm takes it as a service name (a DNS label: letters, digits, `-` and `_`
    between them, at most 63 characters), else a cleaned, shortened form with a hash of it."""
    if len(name) <= SERVICE_NAME_MAX and _SERVICE_NAME.match(name):
        return name
    return _shortened(name, SERVICE_NAME_MAX)


def object_name(instance: str, kind: str, digest: str) -> str:
    """The name of a secret or config of this instance: whose, what, which content."""
    return _shortened(f"serve-{instance}-{kind}", OBJECT_NAME_MAX - len(digest) - 1) + (
        f"-{digest}"
    )


def _shortened(name: str, limit: int) -> str:
    suffix = hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]
    cleaned = _NOT_NAME.sub("-", name).strip("-") or "x"
    if cleaned == name and len(name) <= limit:
        return name
    return f"{cleaned[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def resources(spec: DeploymentSpec, hard_limits: bool = False) -> dict[str, Any]:
    """Ray's logical resources as Swarm's: reservations the scheduler places by (a replica that
    fits no node stays pending, and says so), GPUs and custom resources as discrete generic
    resources (whole units: Swarm cannot split one), limits only with `hard_limits`."""
    r = spec.resources
    reserve: dict[str, Any] = {}
    if r.num_cpus > 0:
        reserve["NanoCPUs"] = int(r.num_cpus * NS)
    if r.memory:
        reserve["MemoryBytes"] = int(r.memory)
    kinds = ([("gpu", r.num_gpus)] if r.num_gpus > 0 else []) + [
        (name, amount) for name, amount in r.custom if amount > 0
    ]
    if kinds:
        reserve["GenericResources"] = [
            {"DiscreteResourceSpec": {"Kind": kind, "Value": math.ceil(amount)}}
            for kind, amount in kinds
        ]
    limits: dict[str, Any] = {"Pids": PIDS_LIMIT}
    if hard_limits:
        if r.num_cpus > 0:
            limits["NanoCPUs"] = int(r.num_cpus * NS)
        if r.memory:
            limits["MemoryBytes"] = int(r.memory)
    return {"Reservations": reserve, "Limits": limits}


def _env_list(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


@dataclass(frozen=True)
class ReplicaInputs:
    """What a replica's service is made from besides its spec and index."""

    instance: str
    image: str  # pinned: repository@sha256:...
    network: str
    router_url: str
    token: FileRef
    token_id: str
    secret_env: FileRef | None = None
    hard_limits: bool = False


def replica_service(
    spec: DeploymentSpec, index: int, name: str, x: ReplicaInputs
) -> dict[str, Any]:
    """The ServiceSpec of one replica (see the module doc)."""
    env = containers.replica_env(spec, index, x.router_url)
    env["SERVE_CONTROL_TOKEN_FILE"] = TOKEN_FILE
    secrets = [x.token.secret()] + ([x.secret_env.secret()] if x.secret_env else [])
    return {
        "Name": name,
        "Labels": {
            **containers.replica_labels(x.instance, spec, index),
            labels.TOKEN_ID: x.token_id,
        },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": x.image,
                "Command": containers.REPLICA_COMMAND,
                "Env": _env_list(env),
                "Dir": "/app/work",
                "User": containers.USER,
                "Secrets": secrets,
                "StopGracePeriod": max(1, math.ceil(spec.graceful_shutdown_timeout_s)) * NS,
                "StopSignal": "SIGTERM",
                "Healthcheck": {"Test": ["NONE"]},
                "CapabilityDrop": ["ALL"],
            },
            "Resources": resources(spec, x.hard_limits),
            "RestartPolicy": dict(REPLICA_RESTART),
            "Networks": [{"Target": x.network}],
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "EndpointSpec": {
            "Mode": "dnsrr",
            "Ports": [
                {
                    "Protocol": "tcp",
                    "TargetPort": containers.REPLICA_PORT,
                    "PublishMode": "host",
                }
            ],
        },
    }


@dataclass(frozen=True)
class IngressInputs:
    instance: str
    name: str
    image: str
    network: str
    http_port: int
    key: str  # identifies the configuration below (a change of it is a service update)
    config: FileRef  # HAProxy's configuration
    files: tuple[FileRef, ...]  # the files it names, and the admin gate
    token: FileRef
    token_id: str


def ingress_command() -> list[str]:
    """The admin gate first, HAProxy (master-worker) its child: the gate passes SIGTERM on and
    ends with it, so a stop takes a moment, not the grace period."""
    gate = ["python3", GATE_FILE, str(GATE_PORT), TOKEN_FILE, ADMIN_SOCKET]
    return [*gate, "--", *containers.INGRESS_COMMAND]


def ingress_service(x: IngressInputs) -> dict[str, Any]:
    """The ServiceSpec of the global ingress (see the module doc)."""
    return {
        "Name": x.name,
        "Labels": {
            **containers.base_labels(x.instance, "ingress"),
            labels.INGRESS_KEY: x.key,
            labels.TOKEN_ID: x.token_id,
        },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": x.image,
                "Command": ingress_command(),
                "User": containers.USER,
                "Configs": [x.config.config()] + [f.config() for f in x.files],
                "Secrets": [x.token.secret()],
                "StopGracePeriod": 10 * NS,
                "CapabilityDrop": ["ALL"],
            },
            "Resources": {"Limits": {"Pids": PIDS_LIMIT}},
            "RestartPolicy": dict(INGRESS_RESTART),
            "Networks": [{"Target": x.network}],
        },
        "Mode": {"Global": {}},
        "UpdateConfig": dict(INGRESS_UPDATE),
        "EndpointSpec": {
            "Mode": "dnsrr",
            "Ports": [
                {
                    "Protocol": "tcp",
                    "TargetPort": containers.REPLICA_PORT,
                    "PublishedPort": x.http_port,
                    "PublishMode": "host",
                },
                {"Protocol": "tcp", "TargetPort": GATE_PORT, "PublishMode": "host"},
            ],
        },
    }


def create_args(spec: dict[str, Any]) -> dict[str, Any]:
    """A ServiceSpec as the keyword arguments of the SDK's `APIClient.create_service` (which
    also sends the registry credentials the image's registry needs, for the nodes' pulls)."""
    return {
        "task_template": spec["TaskTemplate"],
        "name": spec["Name"],
        "labels": spec.get("Labels"),
        "mode": spec.get("Mode"),
        "update_config": spec.get("UpdateConfig"),
        "endpoint_spec": spec.get("EndpointSpec"),
    }


def update_args(spec: dict[str, Any]) -> dict[str, Any]:
    """A whole ServiceSpec (as read, or as made) as the keyword arguments of
    `APIClient.update_service`: it replaces the spec, nothing is merged from the current one."""
    return {**create_args(spec), "rollback_config": spec.get("RollbackConfig")}
