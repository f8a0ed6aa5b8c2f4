"""The seams between the reconcile pass and the outside world, as structural protocols.

The concrete classes (`runtime.docker_engine.DockerEngine`, `source.GitSource`,
`state.StateStore`) satisfy these without importing this module; tests may pass behavioural fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Protocol

from reconciler.model import (
    DeploymentSpec,
    HttpOptions,
    ObservedReplica,
    ServeConfig,
)


class Engine(Protocol):
    """One container engine, seen through the replicas this reconciler instance owns."""

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

    def observe(self) -> list[ObservedReplica]:
        """Every replica container this instance owns, with state, version and user_config hash.
        Raises EngineUnavailable when the engine cannot be reached."""
        ...

    def start_replica(self, spec: DeploymentSpec, index: int) -> None: ...

    def reconfigure(self, replica: ObservedReplica, spec: DeploymentSpec) -> None: ...

    def drain(self, replica: ObservedReplica, timeout_s: float) -> None: ...

    def remove(self, replica: ObservedReplica) -> None: ...

    def apply_ingress(self, http: HttpOptions | None, haproxy_cfg: str | None) -> None:
        """Make the ingress container serve this HAProxy config (None removes the ingress)."""
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
