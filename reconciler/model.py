"""Value objects shared by every layer: the desired state (a validated Serve config), the observed
state (replicas as the engine reports them) and the status vocabulary of Ray Serve.

Everything here is a frozen dataclass or an enum; this module does no I/O and imports only the
standard library.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.records import ReplicaEvent, ReplicaRow, TimelineEntry

JSONValue = Any
"""A value JSON can carry (dict, list, str, int, float, bool, None)."""


def canonical_json(value: JSONValue) -> str:
    """The one JSON encoding used for hashing and comparing user values."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def short_hash(*parts: str) -> str:
    """A 12-hex-digit SHA-256 digest of the parts (the form used in labels and names)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:12]


# --- Serve's status vocabulary -------------------------------------------------------------


class ApplicationStatus(enum.StrEnum):
    NOT_STARTED = "NOT_STARTED"
    DEPLOYING = "DEPLOYING"
    RUNNING = "RUNNING"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    UNHEALTHY = "UNHEALTHY"
    DELETING = "DELETING"


class DeploymentStatus(enum.StrEnum):
    UPDATING = "UPDATING"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"
    # Serve 2.9+: the autoscaler moved the target and the replicas follow (the app stays
    # RUNNING). A config change that scales stays UPDATING (the app DEPLOYING), as in 2.0-2.8.
    UPSCALING = "UPSCALING"
    DOWNSCALING = "DOWNSCALING"


class ReplicaState(enum.StrEnum):
    """What the engine says about one replica container."""

    STARTING = "STARTING"  # running, not yet confirmed ready
    RUNNING = "RUNNING"  # running and ready (or Docker health says healthy)
    UNHEALTHY = "UNHEALTHY"  # Docker's health check failed 3 times in a row
    STOPPING = "STOPPING"  # out of rotation, draining (renamed with a drain marker)
    FAILED = "FAILED"  # exited or dead: crashed, or failed to start
    STALE = "STALE"  # created but never started (a pass died between create and start)


# --- Desired state: a validated config ------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    """`ray_actor_options`: Ray's *logical* resources. They reserve capacity on the host (see
    `admission`) and weigh the replica's CPU share; they cap nothing unless the reconciler is
    told to (`--hard-limits`). `memory` is in bytes."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    custom: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class AutoscalingConfig:
    """Serve's autoscaling settings with Serve's defaults (Ray 2.40-2.60; `autoscale.py` applies
    them). `extra` carries the fields with no effect here (policy), as canonical JSON."""

    min_replicas: int = 1
    max_replicas: int = 1
    initial_replicas: int | None = None
    target_ongoing_requests: float = 2.0  # per replica (Ray < 2.32: 1.0, and its older name)
    metrics_interval_s: float = 10.0
    look_back_period_s: float = 30.0
    smoothing_factor: float = 1.0
    upscale_smoothing_factor: float | None = None  # Ray 2.9's names, deprecated in 2.10
    downscale_smoothing_factor: float | None = None
    upscaling_factor: float | None = None  # Ray 2.10+
    downscaling_factor: float | None = None
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    downscale_to_zero_delay_s: float | None = None  # Ray 2.50+: the 1 -> 0 step's own delay
    aggregation_function: str = "mean"  # Ray 2.60: mean, max or min over the look-back window
    extra: tuple[tuple[str, str], ...] = ()  # other fields, canonical JSON values

    @property
    def start_replicas(self) -> int:
        return self.initial_replicas if self.initial_replicas is not None else self.min_replicas

    @property
    def upscale_factor(self) -> float:
        """Serve's precedence: upscaling_factor, else upscale_smoothing_factor, else
        smoothing_factor."""
        return self.upscaling_factor or self.upscale_smoothing_factor or self.smoothing_factor

    @property
    def downscale_factor(self) -> float:
        return self.downscaling_factor or self.downscale_smoothing_factor or self.smoothing_factor

    def bound(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


# `num_replicas: auto` (Ray 2.10+; these values since 2.32): Serve's autoscaling defaults, each
# overridden by the same field of an explicit autoscaling_config.
AUTO_NUM_REPLICAS = {"min_replicas": 1, "max_replicas": 100, "target_ongoing_requests": 2.0}


@dataclass(frozen=True)
class CodeTree:
    """The files a deployment runs: repository-relative path -> SHA-256 of the content.

    `root` is the absolute directory on this machine that holds the files at the applied commit
    (a per-commit export, never a moving work tree); `dirs` are the repository-relative
    directories (working_dir first, then py_modules) that get copied into the replica.
    """

    root: str
    dirs: tuple[str, ...]
    files: tuple[tuple[str, str], ...]
    # Remote working_dir / py_modules (https:// or file:// zips): (the URI as written in `dirs`,
    # the absolute directory on this machine it was unpacked into). Their files are keyed
    # "<URI>/<path>" in `files`.
    external: tuple[tuple[str, str], ...] = ()

    def location(self, entry: str) -> str | None:
        """The unpacked directory of a remote entry of `dirs`, None for a repository path."""
        return dict(self.external).get(entry)

    @property
    def digest(self) -> str:
        return short_hash(*(f"{path}={sha}" for path, sha in self.files), *self.dirs)


@dataclass(frozen=True)
class Requirement:
    """One pip requirement (PEP 508), and where the config (or requirements file) wrote it."""

    text: str  # as written, stripped
    name: str  # the project name, normalized (PEP 503: lowercase, runs of -_. as one -)
    file: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)
    path: str = field(default="", compare=False)  # e.g. "runtime_env.pip[0]"


@dataclass(frozen=True)
class PackageSet:
    """runtime_env.pip (or uv): installed into the deployment's image, offline, from wheels
    resolved on the reconciler's host. `installer` says which key the user wrote ("pip" or
    "uv"); both are installed with pip."""

    installer: str
    requirements: tuple[Requirement, ...]
    check: bool = False  # pip_check / uv_check: `pip check` after the install
    pip_version: str | None = None  # e.g. "==23.2.1": the pip that installs them
    file: str = field(default="", compare=False)  # where the pip key is (for errors)
    line: int = field(default=0, compare=False)
    column: int = field(default=0, compare=False)
    path: str = field(default="", compare=False)

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(r.text for r in self.requirements)

    @property
    def digest(self) -> str:
        return short_hash(
            self.installer, *self.lines, f"check={self.check}", self.pip_version or ""
        )


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment with every field resolved (config > code > Serve default)."""

    app: str
    name: str
    import_path: str  # the application's import path, "module:attr" or "module.attr"
    num_replicas: int  # the target replica count
    route_prefix: str | None  # only set on the application's ingress deployment
    is_ingress: bool
    max_ongoing_requests: int = 5
    user_config: JSONValue = None
    autoscaling_config: AutoscalingConfig | None = None
    graceful_shutdown_wait_loop_s: float = 2.0
    graceful_shutdown_timeout_s: float = 20.0
    health_check_period_s: float = 10.0
    health_check_timeout_s: float = 30.0
    resources: Resources = field(default_factory=Resources)
    image: str | None = None  # runtime_env.image_uri; None means the reconciler's default image
    env: tuple[tuple[str, str], ...] = ()  # merged env_vars, sorted by name
    secret_env: frozenset[str] = frozenset()  # names of env vars to redact in /config
    code: CodeTree | None = None
    args: str = "{}"  # the application's args, canonical JSON
    packages: PackageSet | None = None  # runtime_env.pip / uv
    # The image built for this version by the engine's prepare() (image_uri or the default
    # image + packages + code + replica runtime); None: start from `image` and copy the code in.
    # Not compared: it is derived from the fields above, plus the reconciler's own files.
    built_image: str | None = field(default=None, compare=False)
    # The code has a @serve.multiplexed method: the ingress routes by model id. Not part of
    # `version` (it follows the code, whose change restarts the replicas anyway).
    multiplexed: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.name)

    @property
    def user_config_hash(self) -> str:
        return short_hash(canonical_json(self.user_config))

    @property
    def version(self) -> str:
        """Hash of everything whose change needs a restart (Serve's heavyweight fields). Which
        env vars are secret counts too (secret values reach the replica another way), but only
        when there are some, so the versions of other deployments never move for it; the same
        for the packages. The reconciler's own files (the replica runtime) are not part of it:
        an upgrade of the reconciler restarts nothing."""
        secret = [f"secret-env:{','.join(sorted(self.secret_env))}"] if self.secret_env else []
        packages = [f"packages:{self.packages.digest}"] if self.packages else []
        return short_hash(
            *secret,
            *packages,
            self.import_path,
            self.image or "",
            canonical_json(self.env),
            canonical_json(
                [
                    self.resources.num_cpus,
                    self.resources.num_gpus,
                    self.resources.memory,
                    self.resources.custom,
                ]
            ),
            self.code.digest if self.code else "",
            self.args,
        )


@dataclass(frozen=True)
class ApplicationSpec:
    name: str
    route_prefix: str | None
    import_path: str
    ingress: str  # name of the ingress deployment
    deployments: tuple[DeploymentSpec, ...]

    def deployment(self, name: str) -> DeploymentSpec | None:
        return next((d for d in self.deployments if d.name == name), None)


@dataclass(frozen=True)
class HttpOptions:
    host: str = "0.0.0.0"
    port: int = 8000
    root_path: str = ""
    request_timeout_s: float | None = None


@dataclass(frozen=True)
class ServeConfig:
    """A validated config. `document` is the config exactly as the user wrote it (for /config);
    `warnings` are what validation noted without refusing it, as "file:line:col: warning: ..."
    lines (fields with no effect on Docker, or that Ray 2.60 ignores and the reconciler honours)."""

    shape: str  # "single" or "multi"
    http: HttpOptions
    applications: tuple[ApplicationSpec, ...]
    document: Mapping[str, JSONValue] = field(default_factory=dict, compare=False)
    source_file: str = ""  # repository-relative path of the config file
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def deployments(self) -> Iterator[DeploymentSpec]:
        for app in self.applications:
            yield from app.deployments

    def application(self, name: str) -> ApplicationSpec | None:
        return next((a for a in self.applications if a.name == name), None)


# --- Observed state: what the engine reports ------------------------------------------------


@dataclass(frozen=True)
class Demand:
    """What one replica asks of the host (Ray's logical resources; memory in bytes)."""

    cpus: float = 0.0
    memory: int = 0
    gpus: float = 0.0
    custom: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ObservedReplica:
    """One replica container as seen on this pass (a snapshot, never trusted across passes)."""

    container_id: str
    name: str
    app: str
    deployment: str
    index: int
    version: str
    state: ReplicaState
    user_config_hash: str | None = None  # what the replica reports it runs; None if unknown
    control_url: str | None = None  # http://127.0.0.1:PORT, the replica's published port
    network_ip: str | None = None  # address on the reconciler's network (for the ingress)
    created_at: float = 0.0
    drain_deadline: float | None = None  # for STOPPING replicas: when to force-kill
    error: str | None = None  # for FAILED/UNHEALTHY: the user's own error text
    demand: Demand | None = None  # what it was started asking for (None: an older reconciler)
    # For STOPPING replicas: requests the ingress still has running or queued on it (0 once
    # its server is gone); None when the ingress cannot say.
    in_flight: int | None = None
    stop_sent: bool = False  # STOPPING: it was told to stop (SIGTERM) and is finishing
    # STARTING: why the engine has not run it yet, when it knows (Swarm: no node has room for
    # it, or its node was lost and it is being moved); None while it simply starts.
    waiting: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.app, self.deployment)


@dataclass(frozen=True)
class FailureRecord:
    """Consecutive start failures of one deployment at one version (soft state, for backoff)."""

    version: str
    count: int
    last_error: str
    retry_at: float  # monotonic-free wall time (time.time()) before which no replica is started


# --- The plan: what one pass will do (computed before any side effect) ----------------------


@dataclass(frozen=True)
class StartReplica:
    """Create and start a replica of `spec` with this index (its name is derived from it)."""

    spec: DeploymentSpec
    index: int


@dataclass(frozen=True)
class ReconfigureReplica:
    """Hand `spec.user_config` to a running replica's `reconfigure()`; no restart."""

    replica: ObservedReplica
    spec: DeploymentSpec


@dataclass(frozen=True)
class DrainReplica:
    """Take a replica out of rotation (the ingress follows first) and give it `timeout_s` to
    drain; it is told to stop (StopReplica) once the ingress has nothing left on it."""

    replica: ObservedReplica
    timeout_s: float
    reason: str


@dataclass(frozen=True)
class StopReplica:
    """Tell a drained replica to stop (SIGTERM): the ingress has nothing left on it, or its
    drain deadline is near. It finishes what it has and exits."""

    replica: ObservedReplica
    reason: str


@dataclass(frozen=True)
class RemoveReplica:
    """Remove a container now: failed, never started, or past its drain deadline."""

    replica: ObservedReplica
    reason: str


Action = StartReplica | ReconfigureReplica | DrainReplica | StopReplica | RemoveReplica


@dataclass(frozen=True)
class Capacity:
    """What the engine can hold: its cores times the CPU overcommit factor, its memory, the GPUs
    and custom resources it was told about, and the instance-wide cap on replicas."""

    cores: float
    cpus: float  # logical CPUs: cores x overcommit
    memory: int  # bytes
    gpus: float = 0.0
    custom: tuple[tuple[str, float], ...] = ()
    max_replicas: int = 1000


@dataclass(frozen=True)
class Pending:
    """Replicas of one deployment the plan wanted to start but the host cannot hold now."""

    count: int
    demand: Demand  # per replica
    free: Demand  # what was left when they were refused
    capacity: Capacity
    replicas_free: int  # room left under the instance's replica cap


@dataclass(frozen=True)
class Plan:
    """The actions of one pass, and what the routing set should be once they are applied.

    `routable` holds the container ids the ingress should send traffic to (healthy replicas that
    this plan does not drain). `settled` is False while a rollout, scale or drain is still in
    progress, so the caller schedules the next pass soon instead of waiting a full interval.
    `pending` holds, per deployment, the replicas that wait for room on the host.
    """

    actions: tuple[Action, ...]
    routable: frozenset[str]
    settled: bool
    pending: Mapping[tuple[str, str], Pending] = field(default_factory=dict)


# --- Status: what /status reports --------------------------------------------------------------


@dataclass(frozen=True)
class AutoscalingStatus:
    """Where an autoscaled deployment stands: its bounds, the target the autoscaler holds, the
    load it last saw, and its last decision in words."""

    min_replicas: int
    max_replicas: int
    target_replicas: int
    in_flight: float | None = None  # requests in flight over the look-back window (None: no data)
    target_ongoing_requests: float = 2.0
    decision: str = ""  # "scaling up 2 -> 5: 9.6 requests in flight, target 2 per replica"
    decided_at: float = 0.0
    by_load: bool = False  # the target comes from the load (else from the config's bounds)
    upscale: bool = True  # the last decision's direction


@dataclass(frozen=True)
class DeploymentStatusInfo:
    name: str
    status: DeploymentStatus
    message: str = ""
    target_replicas: int = 0
    replica_states: tuple[tuple[str, int], ...] = ()  # (ReplicaState value, count), sorted
    pending_replicas: int = 0  # wanted, but the host has no room for them now
    autoscaling: AutoscalingStatus | None = None
    # For the dashboard; not part of the status (equality compares the status only).
    replicas: tuple[ReplicaRow, ...] = field(default=(), compare=False)  # in index order
    version: str = field(default="", compare=False)  # the current version
    image: str | None = field(default=None, compare=False)  # None: the default image
    start_failures: int = field(default=0, compare=False)  # failed starts in a row


@dataclass(frozen=True)
class ApplicationStatusInfo:
    name: str
    status: ApplicationStatus
    message: str = ""
    deployment_timestamp: float = 0.0
    route_prefix: str | None = None
    deployments: tuple[DeploymentStatusInfo, ...] = ()


@dataclass(frozen=True)
class CommitStatus:
    """Where the source stands: what runs, where the branch is, what was judged last."""

    applied: str | None = None
    applied_document: Mapping[str, JSONValue] | None = None  # redacted config of `applied`
    applied_at: float = 0.0  # deployment_timestamp of the applied commit
    latest: str | None = None  # branch head last seen
    attempted: str | None = None  # the newest commit judged
    outcome: str | None = None  # its verdict: "applied", "invalid", "error"
    errors: tuple[str, ...] = ()  # "file:line:col: message" while the branch is on a refused one
    preparing: str | None = None  # a commit being read, fetched or built
    progress: str = ""  # what that preparation is doing
    warnings: tuple[str, ...] = ()  # what validating the applied commit noted, not refused
    pinned: str | None = None  # the commit held whatever the branch does (None: following it)
    pinned_at: float = 0.0
    pin_reason: str = ""

    @property
    def behind_pin(self) -> bool:
        """The branch has moved away from the pinned commit: its head waits behind the pin."""
        return self.pinned is not None and self.latest is not None and self.latest != self.pinned


@dataclass(frozen=True)
class LoopStatus:
    """How the loop itself fares: what it could not reach, and its last pass."""

    source_error: str | None = None  # remote unreachable, branch missing...: scrubbed
    engine_error: str | None = None  # engine unreachable, or the ingress could not follow
    retry: str | None = None  # what the loop does next (errors.Retry value), None when idle
    last_pass_at: float = 0.0
    last_pass_duration_s: float = 0.0
    passes: int = 0


@dataclass(frozen=True)
class EngineNode:
    """One node of a multi-node engine (Docker Swarm) as the last pass saw it; `ready` is False
    for a node that is down, disconnected or drained (its replicas are moved elsewhere)."""

    name: str
    address: str
    state: str  # Swarm's node state: ready, down, disconnected, unknown
    ready: bool
    message: str = ""  # why it is not ready ("heartbeat failure"), or its availability
    role: str = ""  # manager or worker
    replicas: int = 0  # replicas of this instance running on it


@dataclass(frozen=True)
class Snapshot:
    """Everything the HTTP API shows, composed once at the end of each pass (status.compose)."""

    shape: str | None = None  # "single" / "multi" of the applied config; None before any deploy
    applications: tuple[ApplicationStatusInfo, ...] = ()
    commits: CommitStatus = CommitStatus()
    loop: LoopStatus = LoopStatus()
    capacity: Capacity | None = None  # what the engine can hold (None: not known yet)
    pending_replicas: int = 0  # replicas that wait for room, over every deployment
    timeline: tuple[TimelineEntry, ...] = ()  # what happened to commits, newest first
    events: tuple[ReplicaEvent, ...] = ()  # what happened to replicas, newest first
    nodes: tuple[EngineNode, ...] = ()  # a multi-node engine's nodes (a single host: none)


@dataclass(frozen=True)
class HistoryEntry:
    commit: str
    received_at: float
    outcome: str  # "applied", "invalid", "error"
    message: str = ""


# --- The ingress -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngressServer:
    """One routable replica as a server of its deployment's HAProxy backend. `options` are the
    server keywords after the address (checks, maxconn), as the config file and HAProxy's
    `add server` both take them; `replica_id` is the container the server stands for."""

    backend: str
    name: str
    address: str  # an IP literal
    port: int
    options: tuple[str, ...] = ()
    replica_id: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.backend, self.name)


@dataclass(frozen=True)
class IngressConfig:
    """The ingress as rendered: the whole HAProxy configuration (`text`, with
    INGRESS_VERSION_TOKEN where the version goes), the same without any server (`skeleton`:
    when it changes HAProxy must reload; when only `servers` change, its runtime API can follow),
    and the other files the configuration names (file name -> content, beside the config)."""

    text: str
    skeleton: str
    servers: tuple[IngressServer, ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    backends: tuple[str, ...] = ()  # the backends servers belong in (one per deployment)


# --- The ingress handshake -------------------------------------------------------------------

INGRESS_VERSION_PATH = "/-/config-version"
"""The ingress answers this path with the version of the config it serves."""

INGRESS_VERSION_TOKEN = "@@CONFIG_VERSION@@"
"""Placed in the rendered HAProxy config where that answer goes; the engine replaces it with a
digest of the config and, after a reload, waits until the ingress answers that digest, so a
routing change is in force (new replicas routable, drained ones not) when `apply_ingress`
returns."""
