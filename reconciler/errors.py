"""The error taxonomy. The type of an error decides what the loop does next (Flux's model):

- `StalledError`: the input itself is wrong (an invalid config). No retry until a new commit.
- `TransientError`: something outside is unavailable (git remote, Docker engine). Retry with
  capped exponential backoff; running replicas are left alone.
- anything else: caught at the top of a pass, reported, retried on the next interval.

Messages never carry credentials: the modules that talk to git and Docker scrub them before
raising.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ERROR, WARNING = "error", "warning"  # ConfigIssue.severity


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
    """The git source is in a state we cannot read (bad branch, corrupt object after re-clone)."""


class EngineUnavailable(TransientError):
    """The Docker engine cannot be reached."""


class EngineError(ReconcilerError):
    """The Docker engine refused an operation (bad image, name conflict we cannot resolve...)."""


class StateError(ReconcilerError):
    """The state directory cannot be written (disk full, permissions) or is locked by another
    daemon."""
