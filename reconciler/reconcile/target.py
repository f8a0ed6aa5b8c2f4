"""Which config should run: the target of the reconcile loop.

`GitTarget` follows one branch: it asks the remote for the head, loads the config at exactly that
commit, refuses an invalid commit (stalled until a new commit arrives) and keeps the last good one.
`WorkTreeTarget` is `reconciler up`: a directory on disk, re-read on every pass, no git.
Neither raises: what went wrong is reported in the returned `TargetView`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.errors import ConfigError, ReconcilerError, StateError, TransientError
from reconciler.model import ServeConfig, canonical_json, short_hash
from reconciler.ports import Source, Store

log = logging.getLogger(__name__)

Loader = Callable[[Path, str], ServeConfig]


@dataclass(frozen=True)
class Target:
    """The config being reconciled toward, and the commit it came from."""

    commit: str
    config: ServeConfig
    received_at: float  # Serve's deployment_timestamp: when this commit was first accepted


@dataclass(frozen=True)
class Attempt:
    commit: str
    outcome: str  # "applied", "invalid", "error"
    errors: tuple[str, ...] = ()
    at: float = 0.0


@dataclass(frozen=True)
class TargetView:
    target: Target | None
    latest_commit: str | None
    attempt: Attempt | None
    source_error: str | None  # transient: the remote could not be asked this pass
    changed: bool  # the target changed on this refresh (a new deploy starts)


class TargetProvider(Protocol):
    def refresh(self) -> TargetView: ...


def _issue_lines(error: ConfigError) -> tuple[str, ...]:
    return tuple(str(issue) for issue in error.issues)


class GitTarget:
    """Follows a branch; the last good commit keeps running while a newer one is invalid."""

    def __init__(
        self,
        *,
        source: Source,
        store: Store,
        config_path: str,
        load: Loader,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._store = store
        self._config_path = config_path
        self._load = load
        self._clock = clock
        self._target: Target | None = None
        self._latest: str | None = None
        last = store.last_attempt()
        self._attempt = (
            Attempt(last.commit, last.outcome, tuple(last.errors), last.at) if last else None
        )

    def refresh(self) -> TargetView:
        changed = False
        if self._target is None:
            self._target = self._restore()
        try:
            head = self._source.head()
            self._latest = head
            if not self._already_decided(head):
                changed = self._try_commit(head)
        except ReconcilerError as exc:
            # The remote is unreachable, the branch is gone, or the state directory cannot be
            # written (disk full): the commit could not be judged. Retried with backoff; the
            # last good target keeps running.
            return self._view(source_error=str(exc), changed=False)
        return self._view(source_error=None, changed=changed)

    def _view(self, *, source_error: str | None, changed: bool) -> TargetView:
        return TargetView(self._target, self._latest, self._attempt, source_error, changed)

    def _already_decided(self, head: str) -> bool:
        if self._target is not None and self._target.commit == head:
            return True
        # Stalled: an invalid commit is not retried until the branch moves.
        return (
            self._attempt is not None
            and self._attempt.commit == head
            and (self._attempt.outcome == "invalid")
        )

    def _try_commit(self, commit: str) -> bool:
        now = self._clock()
        try:
            tree = self._source.checkout(commit)
            config = self._load(tree, self._config_path)
        except ConfigError as exc:
            log.warning("commit %s is invalid, not applied:\n%s", commit[:12], exc)
            self._attempt = Attempt(commit, "invalid", _issue_lines(exc), now)
            self._store.record_attempt(commit, "invalid", self._attempt.errors, now)
            return False
        except (TransientError, StateError):
            raise  # nothing is wrong with the commit: try it again next pass
        except ReconcilerError as exc:
            log.error("commit %s could not be read: %s", commit[:12], exc)
            self._attempt = Attempt(commit, "error", (str(exc),), now)
            self._store.record_attempt(commit, "error", self._attempt.errors, now, str(exc))
            return False
        document = json.dumps(dict(config.document), sort_keys=True)
        self._store.set_applied(commit, self._config_path, document, now)
        self._store.record_attempt(commit, "applied", (), now)
        self._attempt = Attempt(commit, "applied", (), now)
        self._target = Target(commit, config, now)
        log.info("commit %s accepted: deploying", commit[:12])
        return True

    def _restore(self) -> Target | None:
        """After a restart, pick up the commit that was applied before, without redeploying."""
        record = self._store.applied()
        if record is None:
            return None
        try:
            tree = self._source.checkout(record.commit)
            config = self._load(tree, record.config_path)
        except ReconcilerError as exc:
            log.warning("could not restore applied commit %s: %s", record.commit[:12], exc)
            return None
        log.info("resuming at applied commit %s", record.commit[:12])
        return Target(record.commit, config, record.received_at)


class WorkTreeTarget:
    """`reconciler up`: a working tree on disk, re-read every pass so edits apply as you save."""

    def __init__(
        self,
        *,
        root: Path,
        config_path: str,
        load: Loader,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._root = root
        self._config_path = config_path
        self._load = load
        self._clock = clock
        self._target: Target | None = None
        self._attempt: Attempt | None = None

    def refresh(self) -> TargetView:
        now = self._clock()
        try:
            config = self._load(self._root, self._config_path)
        except ConfigError as exc:
            errors = _issue_lines(exc)
            if self._attempt is None or self._attempt.errors != errors:
                log.warning("%s is invalid, not applied:\n%s", self._config_path, exc)
            self._attempt = Attempt("worktree", "invalid", errors, now)
            return TargetView(self._target, "worktree", self._attempt, None, False)
        commit = "worktree-" + _config_digest(config)
        changed = self._target is None or self._target.commit != commit
        if changed:
            self._target = Target(commit, config, now)
        self._attempt = Attempt(commit, "applied", (), now)
        return TargetView(self._target, commit, self._attempt, None, changed)


def _config_digest(config: ServeConfig) -> str:
    parts: list[str] = [canonical_json(_plain(config.document))]
    parts.extend(f"{d.app}/{d.name}={d.version}" for d in config.deployments())
    return short_hash(*parts)


def _plain(document: Mapping[str, object]) -> object:
    return json.loads(json.dumps(dict(document), default=str))
