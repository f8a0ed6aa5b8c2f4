"""`reconciler up`'s target: a working tree on disk, re-read on every pass so edits apply as they
are saved, no git. An invalid config is refused while the last good one keeps running, as on a
branch. Never raises: what went wrong is reported in the returned `SourceOutcome`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler.errors import ConfigError, ReconcilerError
from reconciler.model import ServeConfig, canonical_json, short_hash
from reconciler.outcome import Attempt, Failure, SourceOutcome, Target, Verdict
from reconciler.reconcile.target import Loader, Preparer, issue_lines, no_preparation

log = logging.getLogger(__name__)

WORKTREE = "worktree"
WORKTREE_LABEL = "the working tree's config"


class WorkTreeTarget:
    """`reconciler up`: a working tree on disk, re-read every pass so edits apply as you save."""

    def __init__(
        self,
        *,
        root: Path,
        config_path: str,
        load: Loader,
        prepare: Preparer = no_preparation,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._root = root
        self._config_path = config_path
        self._load = load
        self._prepare = prepare
        self._clock = clock
        self._target: Target | None = None
        self._attempt: Attempt | None = None

    def refresh(self, *, poll: bool = True) -> SourceOutcome:
        now = self._clock()
        try:
            config = self._load(self._root, self._config_path)
            commit = f"{WORKTREE}-{_config_digest(config)}"
            changed = self._target is None or self._target.commit != commit
            if changed:
                prepared = self._prepare(config, lambda text: log.info("%s", text))
                self._target = Target(commit, prepared, now, label="the working tree")
        except ConfigError as exc:
            errors = issue_lines(exc)
            if self._attempt is None or self._attempt.errors != errors:
                log.warning("%s is invalid, not applied:\n%s", self._config_path, exc)
            self._attempt = Attempt(WORKTREE, Verdict.INVALID, errors, now, WORKTREE_LABEL)
            return SourceOutcome(self._target, WORKTREE, self._attempt)
        except ReconcilerError as exc:
            return SourceOutcome(self._target, WORKTREE, self._attempt, Failure.of(exc))
        self._attempt = Attempt(commit, Verdict.APPLIED, (), now, WORKTREE_LABEL)
        return SourceOutcome(self._target, commit, self._attempt, changed=changed)


def _config_digest(config: ServeConfig) -> str:
    parts: list[str] = [canonical_json(_plain(config.document))]
    parts.extend(f"{d.app}/{d.name}={d.version}" for d in config.deployments())
    return short_hash(*parts)


def _plain(document: Mapping[str, object]) -> object:
    return json.loads(json.dumps(dict(document), default=str))
