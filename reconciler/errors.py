"""The error taxonomy. The type of an error decides what the loop does next (Flux's model), through
`retry_of`, the one place that maps an error to a `Retry` class:

- `StalledError`: the input itself is wrong (an invalid config, a deleted branch). No retry until
  the input changes; the loop only keeps polling at its interval to notice the change.
- `TransientError`: something outside is unavailable (git remote, Docker engine, a full disk).
  Retry with capped exponential backoff, each kind on its own; running replicas are left alone.
- anything else: a bug or an unforeseen refusal. Reported, and retried with backoff.

Messages never carry credentials: the modules that talk to git and Docker scrub them before
raising.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

ERROR, WARNING = "error", "warning"  # ConfigIssue.severity


class Retry(enum.StrEnum):
    """What the loop does about one outcome of a pass."""

    STALLED = "stalled"  # the input is wrong: wait for it to change (poll at the interval)
    WAITING = "waiting"  # work is in progress (a rollout, a build): look again soon
    TRANSIENT = "transient"  # something outside is down: back off, per kind
    GENERIC = "generic"  # unexpected: report it, back off


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One thing wrong with a config, located precisely enough for an editor or CI annotation."""

    file: str
    line: int  # 1-based; 0 when the issue is about the whole file
    column: int  # 1-based; 0 when unknown
    path: str  # the place in the document, e.g. "applications[0].deployments[1].num_replicas"
    message: str  # plain words: what is wrong, and where useful, what to write instead
    # "error": the config is refused. "warning": accepted, but something differs from what Ray
    # Serve would do (a field with no effect on Docker, or one Ray 2.60 ignores and we honour).
    severity: str = ERROR

    @property
    def is_warning(self) -> bool:
        return self.severity == WARNING

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        at = f" ({self.path})" if self.path else ""
        label = "warning: " if self.is_warning else ""
        return f"{where}: {label}{self.message}{at}"


class ReconcilerError(Exception):
    """Base of every error this package raises on purpose."""


class StalledError(ReconcilerError):
    """The input is wrong; retrying the same input cannot help."""


class ConfigError(StalledError):
    """A config failed validation. Carries every issue found, not only the first (`issues`, the
    errors), and the warnings found on the way (`warnings`, for `reconciler validate`)."""

    def __init__(self, issues: Sequence[ConfigIssue], warnings: Sequence[ConfigIssue] = ()) -> None:
        self.issues = sorted(issues)
        self.warnings = sorted(warnings)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid config")


class CodeBuildError(StalledError):
    """The user's code failed to build its application where the reconciler imported it in a
    sandbox container: an exception at import, or a limit (time, memory) that stopped it.
    `file` and `line` locate it in the repository when the traceback says where."""

    def __init__(self, message: str, *, file: str = "", line: int = 0) -> None:
        self.message = message
        self.file = file
        self.line = line
        super().__init__(message)


class TransientError(ReconcilerError):
    """Something outside us is unavailable for now; retry later with backoff."""


class SourceUnavailable(TransientError):
    """The git remote cannot be reached, timed out, or refused our credentials."""


class SourceError(ReconcilerError):
    """The git source is in a state we cannot read (corrupt object after re-clone, a bad id)."""


class BranchMissing(SourceError, StalledError):
    """The followed branch is not on the remote (deleted, or misspelt): nothing to deploy until
    it appears; what runs keeps running."""


class EngineUnavailable(TransientError):
    """The Docker engine cannot be reached."""


class EngineError(ReconcilerError):
    """The Docker engine refused an operation (bad image, name conflict we cannot resolve...)."""


class StateError(TransientError):
    """The state directory cannot be written (disk full, permissions) or is locked by another
    daemon: retried with a backoff of its own, since freeing space fixes it."""


class ImageMissing(EngineError):
    """The image named is not on the engine (the reconciler never pulls)."""


class FetchUnavailable(TransientError):
    """A remote working_dir / py_modules archive could not be fetched for now (network, a 5xx
    answer, a timeout): retried with backoff, while the last good commit keeps running."""


class FetchRefused(ReconcilerError):
    """A remote archive was fetched but cannot be used (not a zip, too large, a member leaving
    its directory, a sha256 that differs from the pinned one): the commit is refused."""


class PackagesUnavailable(TransientError):
    """The package index could not be reached while resolving runtime_env.pip: retried with
    backoff, while the last good commit keeps running."""


def retry_of(error: BaseException) -> Retry:
    """The one mapping from an error to what the loop does next."""
    if isinstance(error, StalledError):
        return Retry.STALLED
    if isinstance(error, TransientError):
        return Retry.TRANSIENT
    return Retry.GENERIC


def kind_of(error: BaseException) -> str:
    """Which part of the world an error came from; each kind backs off on its own."""
    if isinstance(error, StateError):
        return "state"
    if isinstance(error, SourceUnavailable | SourceError):
        return "source"
    if isinstance(error, EngineUnavailable | EngineError):
        return "engine"
    if isinstance(error, TransientError):
        return "fetch"
    return "internal"
