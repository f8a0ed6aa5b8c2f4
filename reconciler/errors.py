"""The error taxonomy. The type of an error decides what the loop does next (Flux's model):

- `StalledError`: the input itself is wrong (an invalid config). No retry until a new commit.
- `TransientError`: something outside is unavailable (git remote, Docker engine). Retry with
  capped exponential backoff; running replicas are left alone.
- anything else: caught at the top of a pass, reported, retried on the next interval.

Messages never carry credentials: the modules that talk to git and Docker scrub them before
raising.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One thing wrong with a config, located precisely enough for an editor or CI annotation."""

    file: str
    line: int  # 1-based; 0 when the issue is about the whole file
    column: int  # 1-based; 0 when unknown
    path: str  # the place in the document, e.g. "applications[0].deployments[1].num_replicas"
    message: str  # plain words: what is wrong, and where useful, what to write instead

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        at = f" ({self.path})" if self.path else ""
        return f"{where}: {self.message}{at}"


class ReconcilerError(Exception):
    """Base of every error this package raises on purpose."""


class StalledError(ReconcilerError):
    """The input is wrong; retrying the same input cannot help."""


class ConfigError(StalledError):
    """A config failed validation. Carries every issue found, not only the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = sorted(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid config")


class TransientError(ReconcilerError):
    """Something outside us is unavailable for now; retry later with backoff."""


class SourceUnavailable(TransientError):
    """The git remote cannot be reached, timed out, or refused our credentials."""


class SourceError(ReconcilerError):
    """The git source is in a state we cannot read (bad branch, corrupt object after re-clone)."""


class EngineUnavailable(TransientError):
    """The Docker engine cannot be reached."""


class EngineError(ReconcilerError):
    """The Docker engine refused an operation (bad image, name conflict we cannot resolve...)."""


class ImageMissing(EngineError):
    """The image named is not on the engine (the reconciler never pulls)."""


class StateError(ReconcilerError):
    """The state directory cannot be written (disk full, permissions) or is locked by another
    daemon."""


class FetchUnavailable(TransientError):
    """A remote working_dir / py_modules archive could not be fetched for now (network, a 5xx
    answer, a timeout): retried with backoff, while the last good commit keeps running."""


class FetchRefused(ReconcilerError):
    """A remote archive was fetched but cannot be used (not a zip, too large, a member leaving
    its directory, a sha256 that differs from the pinned one): the commit is refused."""


class PackagesUnavailable(TransientError):
    """The package index could not be reached while resolving runtime_env.pip: retried with
    backoff, while the last good commit keeps running."""
