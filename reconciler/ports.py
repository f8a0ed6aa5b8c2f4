"""The seams between the reconcile pass and the outside world, as structural protocols.

The concrete classes (`runtime.docker_engine.DockerEngine` and `runtime.swarm_engine.SwarmEngine`
for `Engine`, `source.GitSource`, `state.StateStore`, `runtime.sandbox.SandboxGraphBuilder`)
satisfy these structurally; tests may pass behavioural fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reconciler.model import (
    Capacity,
    CodeTree,
    DeploymentSpec,
    EngineNode,
    HistoryEntry,
    HttpOptions,
    IngressConfig,
    ObservedReplica,
    PackageSet,
    ServeConfig,
)
from reconciler.records import CommitInfo, Pin, TimelineEntry


class Engine(Protocol):
    """One container engine, seen through the replicas this reconciler instance owns: a single
    Docker host, or a Docker Swarm through one of its managers. The composition root (app.py)
    and the pass use nothing else of either."""

    def ping(self) -> None:
        """Raises EngineUnavailable when the engine cannot be reached."""
        ...

    def close(self) -> None:
        """Stop the engine object's background work (health checks, following events)."""
        ...

    def on_replica_failure(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (from another thread) when something the next pass should see at
        once happens: a replica exits or turns unhealthy, a node is lost."""
        ...

    def on_load(self, sink: Callable[[float, dict[str, float]], None], tick_s: float) -> None:
        """Hand `sink(time, {backend: requests in flight})` the ingress's load every `tick_s`,
        from a thread of its own (nothing while there is no ingress): the autoscaler's input."""
        ...

    def packages_image(
        self, base_image: str, packages: PackageSet, progress: Callable[[str], None]
    ) -> str:
        """The image `base_image` plus `packages`, built when missing: what the sandbox imports
        an application's code in, as Serve builds it in the application's runtime_env."""
        ...

    def prepare(self, config: ServeConfig, progress: Callable[[str], None]) -> ServeConfig:
        """`config` with each deployment naming the image built for its version (built when
        missing: slow the first time; `progress` hears "building ...: step k of n" and pip's
        lines). Raises ConfigError (packages that cannot be resolved or installed, at their
        config line), a TransientError (index or engine unreachable: retry) or EngineError."""
        ...

    def collect_images(self, keep: Collection[str]) -> list[str]:
        """Remove the images this instance built that no container uses and `keep` does not
        name (the built_image tags of the last few applied configs); the tags removed."""
        ...

    def remove_images(self) -> None:
        """Remove every image this instance built that nothing uses (`reconciler down`)."""
        ...

    def observe(self) -> list[ObservedReplica]:
        """Every replica container this instance owns, with state, version and user_config hash.
        Raises EngineUnavailable when the engine cannot be reached."""
        ...

    def nodes(self) -> tuple[EngineNode, ...]:
        """The engine's nodes as the last observe() saw them (a single host: none)."""
        ...

    def settling(self) -> str | None:
        """What of the engine's own is still coming up after this pass's apply, or None: a
        swarm's ingress starting on a node serves nothing yet (so it holds back no drain), but
        the pass is not settled until it serves."""
        ...

    def capacity(self) -> Capacity:
        """What the engine can hold (its cores times the overcommit factor, its memory, the
        GPUs and custom resources it was told about, the replica cap). Cheap: cached."""
        ...

    def start_replica(self, spec: DeploymentSpec, index: int) -> None: ...

    def reconfigure(self, replica: ObservedReplica, spec: DeploymentSpec) -> None: ...

    def drain(self, replica: ObservedReplica, timeout_s: float) -> None:
        """Mark a replica the ingress no longer routes to as STOPPING, with a deadline of
        `timeout_s` from now (it keeps serving what it has)."""
        ...

    def stop(self, replica: ObservedReplica) -> None:
        """Tell a drained replica to stop (SIGTERM): it finishes its requests and exits."""
        ...

    def remove(self, replica: ObservedReplica) -> None: ...

    def apply_ingress(self, http: HttpOptions | None, ingress: IngressConfig | None) -> None:
        """Make the ingress serve this rendered config (None removes the ingress): through
        HAProxy's runtime API when only servers change, else by a reload. Returns once the
        change is in force (new servers routable, removed ones out of rotation); raises
        EngineError when that cannot be confirmed."""
        ...

    def remove_all(self) -> None:
        """Remove every container and network this instance owns (used by `up` on exit)."""
        ...


class Source(Protocol):
    """One branch of one git repository."""

    def head(self) -> str:
        """The commit id the remote branch points at now. Raises SourceUnavailable."""
        ...

    def checkout(self, commit: str) -> Path:
        """An immutable directory holding the tree of `commit` (fetching it if needed)."""
        ...

    def commit_info(self, commit: str) -> CommitInfo:
        """Its author, date and subject line (read from the clone; no network)."""
        ...

    def resolve(self, rev: str) -> str:
        """The full id of a commit named by a full or abbreviated id (fetching if unknown).
        Raises SourceError when the branch has no such commit."""
        ...


class AppliedRecord(Protocol):
    @property
    def commit(self) -> str: ...

    @property
    def config_path(self) -> str: ...

    @property
    def document_json(self) -> str: ...

    @property
    def received_at(self) -> float: ...


class AttemptRecord(Protocol):
    @property
    def commit(self) -> str: ...

    @property
    def outcome(self) -> str: ...

    @property
    def errors(self) -> tuple[str, ...]: ...

    @property
    def at(self) -> float: ...


class Store(Protocol):
    """Durable daemon state (SQLite in the state directory): what was applied and attempted."""

    def applied(self) -> AppliedRecord | None: ...

    def set_applied(
        self, commit: str, config_path: str, document_json: str, received_at: float
    ) -> None: ...

    def last_attempt(self) -> AttemptRecord | None: ...

    def record_attempt(
        self, commit: str, outcome: str, errors: Sequence[str], at: float, message: str = ""
    ) -> None: ...

    def history(self, limit: int = 50) -> list[HistoryEntry]: ...

    def pin(self) -> Pin | None: ...

    def set_pin(self, commit: str, at: float, reason: str) -> None: ...

    def clear_pin(self) -> None: ...

    def record_commit_info(self, commit: str, info: CommitInfo) -> None: ...

    def add_timeline(self, entry: TimelineEntry) -> None: ...

    def timeline(self, limit: int = 50) -> list[TimelineEntry]: ...


# --- Building an application graph by running the user's code (in a sandbox) ----------------


@dataclass(frozen=True)
class DescribedDeployment:
    """One deployment of an application as the code built it. `options` holds the code's
    options (decorator and .options()) except `name`, as JSON; a value that is not plain data
    is {"__unserializable__": repr}."""

    name: str
    class_name: str
    is_function: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ()
    has_reconfigure: bool = False
    has_check_health: bool = False
    asgi_ingress: bool = False
    multiplexed: bool = False


@dataclass(frozen=True)
class GraphDescription:
    """An application graph built from the code: its ingress and every deployment, named as
    Serve names them (a second, different node of a taken name gets _1, _2, ...)."""

    ingress: str
    deployments: tuple[DescribedDeployment, ...]

    def deployment(self, name: str) -> DescribedDeployment | None:
        return next((d for d in self.deployments if d.name == name), None)


class GraphBuilder(Protocol):
    """Builds an application graph by importing the user's module where it cannot harm the
    host (a throwaway container of the target image), for what reading the code cannot decide."""

    def describe(
        self,
        *,
        code: CodeTree,
        import_path: str,
        args: str,
        image: str | None,
        env: tuple[tuple[str, str], ...] = (),
        packages: PackageSet | None = None,
    ) -> GraphDescription:
        """The graph `import_path` builds with `args` (canonical JSON) from `code`, in `image`
        (None: the reconciler's default image) with the application's `packages` installed,
        with the application's plain env vars `env`.
        Raises CodeBuildError when the code fails or hits a limit, EngineUnavailable /
        EngineError when no sandbox can be run."""
        ...
