"""Which config should run: the target of the reconcile loop.

`GitTarget` follows one branch: it asks the remote for the head and turns that commit into a
deployable config (checkout, load and validate, then `prepare`: fetch, build images), refuses an
invalid commit (stalled until the branch moves) and keeps the last good one. Preparing can take
minutes (a pip install, a remote working_dir), so the daemon runs it in the background: the pass
goes on reconciling the current target and reports the preparation's progress, and `on_ready`
asks for a pass when it is done. `WorkTreeTarget` is `reconciler up`: a directory on disk,
re-read on every pass, no git.

Neither raises: what went wrong is reported in the returned `SourceOutcome`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.errors import ConfigError, ReconcilerError, StateError, TransientError
from reconciler.model import ServeConfig, canonical_json, short_hash
from reconciler.outcome import Attempt, Failure, Preparing, SourceOutcome, Target, Verdict
from reconciler.ports import Source, Store

log = logging.getLogger(__name__)

Loader = Callable[[Path, str], ServeConfig]
Progress = Callable[[str], None]
Preparer = Callable[[ServeConfig, Progress], ServeConfig]
WORKTREE = "worktree"
WORKTREE_LABEL = "the working tree's config"


def no_preparation(config: ServeConfig, progress: Progress) -> ServeConfig:
    return config


class TargetProvider(Protocol):
    def refresh(self, *, poll: bool = True) -> SourceOutcome:
        """The target after looking at the source; `poll=False` (the remote is backing off)
        judges nothing new and only collects a preparation that has finished."""
        ...


def _issue_lines(error: ConfigError) -> tuple[str, ...]:
    return tuple(str(issue) for issue in error.issues)


@dataclass(frozen=True)
class _Ready:
    config: ServeConfig


class _Job:
    """One commit being prepared: its result when done, and what it is doing meanwhile."""

    def __init__(self, commit: str, restore: bool, run: Callable[[Progress], _Ready]) -> None:
        self.commit = commit
        self.restore = restore  # the commit applied before a restart: adopt, record nothing
        self.progress = ""
        self._run = run
        self.future: Future[_Ready] = Future()

    def __call__(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            self.future.set_result(self._run(self._report))
        except BaseException as exc:  # handed to the pass, which classifies it
            self.future.set_exception(exc)

    def _report(self, text: str) -> None:
        self.progress = text
        log.info("commit %s: %s", self.commit[:12], text)


class GitTarget:
    """Follows a branch; the last good commit keeps running while a newer one is invalid."""

    def __init__(
        self,
        *,
        source: Source,
        store: Store,
        config_path: str,
        load: Loader,
        prepare: Preparer = no_preparation,
        background: bool = False,
        on_ready: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._store = store
        self._config_path = config_path
        self._load = load
        self._prepare = prepare
        self._on_ready = on_ready
        self._clock = clock
        self._pool = ThreadPoolExecutor(1, "prepare") if background else None
        self._lock = threading.Lock()
        self._job: _Job | None = None
        self._target: Target | None = None
        self._latest: str | None = None
        self._restored = False
        self._changed = False  # the target moved since the last outcome
        self._polled_failure: Failure | None = None  # what the last poll ran into
        last = store.last_attempt()
        self._attempt = (
            Attempt(last.commit, Verdict(last.outcome), tuple(last.errors), last.at)
            if last
            else None
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def refresh(self, *, poll: bool = True) -> SourceOutcome:
        failure = self._collect()
        if not self._restored:
            self._restored = True
            self._start_restore()
            failure = failure or self._collect()
        if not poll:
            # Backing off: the remote's last failure stands until it is asked again.
            return self._outcome(failure or self._polled_failure, polled=False)
        if failure is None:
            try:
                self._latest = self._source.head()
            except ReconcilerError as exc:
                # The remote is unreachable, the branch is gone, the disk is full: the head
                # could not be judged. The last good target keeps running.
                failure = Failure.of(exc)
            else:
                self._judge(self._latest)
                failure = self._collect()
        self._polled_failure = failure
        return self._outcome(failure)

    # --- deciding -------------------------------------------------------------------------

    def _judge(self, head: str) -> None:
        """Start preparing the head unless it runs, was refused (stalled until the branch moves)
        or is being prepared already."""
        if self._target is not None and self._target.commit == head:
            return
        refused = (
            self._attempt is not None
            and self._attempt.commit == head
            and self._attempt.outcome is not Verdict.APPLIED
        )
        if refused or (self._job is not None and self._job.commit == head):
            return
        if self._job is None:
            self._start(head, restore=False)

    def _start_restore(self) -> None:
        """After a restart, pick up the commit applied before, without redeploying."""
        record = self._store.applied()
        if record is not None:
            self._start(record.commit, restore=True, config_path=record.config_path)

    def _start(self, commit: str, *, restore: bool, config_path: str | None = None) -> None:
        path = config_path or self._config_path

        def run(progress: Progress) -> _Ready:
            tree = self._source.checkout(commit)
            config = self._load(tree, path)
            return _Ready(self._prepare(config, progress))

        job = _Job(commit, restore, run)
        self._job = job
        if self._pool is None:
            job()
        else:
            job.future.add_done_callback(lambda _: self._ready())
            self._pool.submit(job)

    def _ready(self) -> None:
        if self._on_ready is not None:
            self._on_ready()

    def _collect(self) -> Failure | None:
        """Record the verdict of a finished preparation. A failure that judges nothing (the
        remote, the disk, the engine, a download) is returned for the loop to back off on."""
        job = self._job
        if job is None or not job.future.done():
            return None
        self._job = None
        record: Callable[[], None]
        try:
            ready = job.future.result()
        except TransientError as exc:
            return Failure.of(exc)
        except ConfigError as exc:
            lines, text = _issue_lines(exc), str(exc)
            record = lambda: self._refuse(job, Verdict.INVALID, lines, text)  # noqa: E731
        except ReconcilerError as exc:
            text = str(exc)
            record = lambda: self._refuse(job, Verdict.UNREADABLE, (text,), text)  # noqa: E731
        except Exception as exc:  # a bug while preparing: report it, try again later
            log.exception("preparing commit %s failed", job.commit[:12])
            return Failure.of(RuntimeError(f"internal error while preparing: {exc!r}"))
        else:
            record = lambda: self._accept(job, ready.config)  # noqa: E731
        try:
            record()
        except StateError as exc:
            self._job = job  # the verdict could not be written (disk full): next time
            return Failure.of(exc)
        return None

    def _refuse(self, job: _Job, verdict: Verdict, errors: tuple[str, ...], text: str) -> None:
        if job.restore:
            log.warning("could not restore applied commit %s: %s", job.commit[:12], text)
            return
        now = self._clock()
        log.warning("commit %s was not applied (%s):\n%s", job.commit[:12], verdict, text)
        self._attempt = Attempt(job.commit, verdict, errors, now)
        message = text if verdict is Verdict.UNREADABLE else ""
        self._store.record_attempt(job.commit, verdict.value, errors, now, message)

    def _accept(self, job: _Job, config: ServeConfig) -> None:
        if job.restore:
            record = self._store.applied()
            received = record.received_at if record else self._clock()
            if self._target is None:  # a newer commit may have been accepted meanwhile
                self._target = Target(job.commit, config, received)
                self._changed = True
            log.info("resuming at applied commit %s", job.commit[:12])
            return
        now = self._clock()
        document = json.dumps(dict(config.document), sort_keys=True)
        self._store.set_applied(job.commit, self._config_path, document, now)
        self._store.record_attempt(job.commit, Verdict.APPLIED.value, (), now)
        self._attempt = Attempt(job.commit, Verdict.APPLIED, (), now)
        self._target = Target(job.commit, config, now)
        self._changed = True
        log.info("commit %s accepted: deploying", job.commit[:12])
        for warning in config.warnings:
            log.warning("commit %s: %s", job.commit[:12], warning)

    def _outcome(self, failure: Failure | None, polled: bool = True) -> SourceOutcome:
        changed, self._changed = self._changed, False
        job = self._job
        preparing = Preparing(job.commit, job.progress) if job and not job.restore else None
        return SourceOutcome(
            target=self._target,
            latest=self._latest,
            attempt=self._attempt,
            failure=failure,
            changed=changed,
            preparing=preparing,
            polled=polled,
        )


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
            errors = _issue_lines(exc)
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
