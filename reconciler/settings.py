"""Every setting of the reconciler with its default, and every exit code, in one place: the
command line's flags, the composition root (app/) and the engine read them from here.
Value objects only."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_IMAGE = "serve-reconciler/python:bookworm"
DEFAULT_INSTANCE = "default"
DEFAULT_CONFIG = "serve_config.yaml"
DEFAULT_BRANCH = "main"
DEFAULT_POLL_INTERVAL_S = 15.0
MIN_POLL_INTERVAL_S = 1.0
DEFAULT_LISTEN = "127.0.0.1:8265"
DEFAULT_GIT_TIMEOUT_S = 60.0
DEFAULT_ONCE_TIMEOUT_S = 600.0
DEFAULT_UP_TIMEOUT_S = 300.0
# Ray's num_cpus is a logical resource: the host offers its cores times this factor, so an
# ordinary config (a few replicas at Serve's default of one CPU each) and the fruit demo run on a
# small host, while a commit asking for far more than the host has waits instead of flooding it.
DEFAULT_CPU_OVERCOMMIT = 4.0
DEFAULT_MEMORY_OVERCOMMIT = 1.0
DEFAULT_MAX_CODE_BYTES = 100 << 20  # a remote working_dir zip, downloaded and unpacked
DEFAULT_CODE_TIMEOUT_S = 60.0
DEFAULT_KEEP_IMAGES = 3  # the image GC keeps what the last 3 applied commits ran
# The ingress's load is sampled this often for the autoscaler (one `show stat` of its backends),
# whatever the poll interval; each deployment keeps one sample per metrics_interval_s.
AUTOSCALE_TICK_S = 0.5
# A request's time limit at the ingress when http_options.request_timeout_s is null: waiting for
# a replica (queued, or while a deployment scales from zero) and waiting for its answer.
DEFAULT_REQUEST_TIMEOUT_S = 60.0
REPLICAS_PER_CORE = 100  # the instance-wide replica cap, unless --max-replicas says otherwise
MIN_REPLICA_CAP = 100


class Exit(enum.IntEnum):
    """What the commands return."""

    OK = 0
    INVALID = 1  # the config is invalid, or the host can never hold it (also: a failed command)
    USAGE = 2  # a bad flag or argument
    UNAVAILABLE = 3  # git or Docker cannot be reached
    NOT_CONVERGED = 4  # valid, but not RUNNING within the timeout
    INTERRUPTED = 130


@dataclass(frozen=True)
class HostLimits:
    """What the host may be asked to hold: its cores times `cpu_overcommit` logical CPUs (Ray's
    num_cpus), its memory times `memory_overcommit`, the GPUs and custom resources it has (Docker
    does not say), and at most `max_replicas` replicas (None: REPLICAS_PER_CORE per core).
    With `hard_limits`, num_cpus and memory also become hard caps (CPU quota, memory limit)."""

    cpu_overcommit: float = DEFAULT_CPU_OVERCOMMIT
    memory_overcommit: float = DEFAULT_MEMORY_OVERCOMMIT
    gpus: float = 0.0
    custom: tuple[tuple[str, float], ...] = ()
    max_replicas: int | None = None
    hard_limits: bool = False

    def replica_cap(self, cores: float) -> int:
        if self.max_replicas is not None:
            return self.max_replicas
        return max(MIN_REPLICA_CAP, int(REPLICAS_PER_CORE * cores))


@dataclass(frozen=True)
class ImageSettings:
    """How deployment images are made: where wheels and fetched code are cached (None: the
    state dir's `cache`, else ~/.cache/serve-reconciler), the host pip's index settings
    (PIP_* variables apply too), the caps on a remote working_dir zip, and how many applied
    commits' images the GC keeps."""

    cache_dir: Path | None = None
    pip_index_url: str | None = None
    pip_extra_index_urls: tuple[str, ...] = ()
    pip_find_links: tuple[str, ...] = ()
    max_code_bytes: int = DEFAULT_MAX_CODE_BYTES
    code_timeout_s: float = DEFAULT_CODE_TIMEOUT_S
    code_file_roots: tuple[Path, ...] = ()
    keep_images: int = DEFAULT_KEEP_IMAGES


ENGINE_KINDS = ("docker", "swarm", "auto")
INGRESS_NETWORKS = ("auto", "host", "bridge")  # runtime/ingress_network.py


@dataclass(frozen=True)
class EngineSettings:
    """`kind`: one Docker host ("docker", the default), a Docker Swarm through one of its
    managers ("swarm"), or whichever DOCKER_HOST is ("auto": a swarm when it is an active
    swarm's manager). `registry` (HOST:PORT) is where a swarm's nodes pull images from."""

    instance: str = DEFAULT_INSTANCE
    default_image: str = DEFAULT_IMAGE
    publish_host: str = "127.0.0.1"
    allowed_images: tuple[str, ...] = ()
    limits: HostLimits = field(default_factory=HostLimits)
    images: ImageSettings = field(default_factory=ImageSettings)
    kind: str = "docker"
    registry: str | None = None
    ingress_network: str = "auto"  # a single host's ingress: "auto", "host" or "bridge"


@dataclass(frozen=True)
class CommitStatusSettings:
    """Where commit statuses go: `api_url` is the repository's API root
    (https://api.github.com/repos/OWNER/REPO, or https://HOST/api/v1/repos/OWNER/REPO for Gitea
    and Forgejo); `context` names this reconciler on the commit."""

    api_url: str
    token: str
    context: str
    target_url: str | None = None  # the dashboard, linked from the status


@dataclass(frozen=True)
class DaemonSettings:
    repo: str
    branch: str = DEFAULT_BRANCH
    config_path: str = DEFAULT_CONFIG
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    state_dir: Path = Path(".reconciler-state")
    listen_host: str = "127.0.0.1"
    listen_port: int = 8265
    webhook_secret: str | None = None
    git_timeout_s: float = DEFAULT_GIT_TIMEOUT_S
    max_parallel_starts: int | None = None  # None: reconcile.actions.default_container_slots()
    engine: EngineSettings = field(default_factory=EngineSettings)
    api_token: str | None = None  # pin, unpin and rollback need it; None: they are off
    dashboard_url: str | None = None  # where people reach GET / (default: the listen address)
    commit_status: CommitStatusSettings | None = None  # None: no commit statuses are posted
