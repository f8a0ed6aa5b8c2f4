"""Which config should run: the target of the reconcile loop.

`GitTarget` follows one branch: it asks the remote for the head and turns that commit into a
deployable config (checkout, load and validate, then `prepare`: fetch, build images), refuses an
invalid commit (stalled until the branch moves) and keeps the last good one. Preparing can take
minutes (a pip install, a remote working_dir), so the daemon runs it in the background: the pass
goes on reconciling the current target and reports the preparation's progress, and `on_ready`
asks for a pass when it is done. (`WorkTreeTarget`, `reconciler up`'s, is in worktree.py.)

A pin holds one commit whatever the branch does: it is prepared and judged like any commit (an
invalid one is refused, and the pin not taken), then becomes the target; while pinned the head
is not judged (it waits behind the pin). Pin, unpin and rollback requests come from the API's
threads through a `PinDesk`; only the pass changes the target.

It never raises: what went wrong is reported in the returned `SourceOutcome`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from reconciler.errors import ConfigError, ReconcilerError, StateError, TransientError
from reconciler.model import ServeConfig
from reconciler.outcome import Attempt, Failure, Preparing, SourceOutcome, Target, Verdict
from reconciler.pins import PinAnswer, PinState, rollback_choice, short
from reconciler.ports import Source, Store
from reconciler.reconcile.jobs import HEAD, PIN, RESTORE, Job, Progress, Ready
from reconciler.reconcile.pinning import Ask, PinDesk, PinRequest
from reconciler.reconcile.timeline import Timeline, changes
from reconciler.records import Change, CommitInfo, Event, Pin, TimelineEntry

log = logging.getLogger(__name__)

Loader = Callable[[Path, str], ServeConfig]
Preparer = Callable[[ServeConfig, Progress], ServeConfig]
ROLLBACK_HISTORY = 200  # history entries `rollback` looks through


def no_preparation(config: ServeConfig, progress: Progress) -> ServeConfig:
    return config


class TargetProvider(Protocol):
    def refresh(self, *, poll: bool = True) -> SourceOutcome:
        """The target after looking at the source; `poll=False` (the remote is backing off)
        judges nothing new and only collects a preparation that has finished."""
        ...


def issue_lines(error: ConfigError) -> tuple[str, ...]:
    return tuple(str(issue) for issue in error.issues)


class GitTarget:
    """Follows a branch; the last good commit keeps running while a newer one is invalid. A
    pinned commit is applied and held whatever the branch does, until unpinned."""

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
        self._job: Job | None = None
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
        self._desk = PinDesk(wake=self._ready)
        self._pin = store.pin()  # held across restarts
        self._want: PinRequest | None = None  # a pin waiting for its commit to be prepared
        self._timeline = Timeline(store=store, source=source)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # --- pin requests, from the API's threads ----------------------------------------------

    def submit_pin(self, rev: str, reason: str = "") -> Future[PinAnswer]:
        """Ask the pass to pin the commit `rev` names (a full or abbreviated id)."""
        try:
            commit = self._source.resolve(rev)
        except ReconcilerError as exc:
            done: Future[PinAnswer] = Future()
            done.set_result(PinAnswer(PinState.UNKNOWN, None, str(exc)))
            return done
        return self._desk.submit(PinRequest(Ask.PIN, commit, reason or "pinned"))

    def submit_unpin(self) -> Future[PinAnswer]:
        return self._desk.submit(PinRequest(Ask.UNPIN))

    def submit_rollback(self) -> Future[PinAnswer]:
        return self._desk.submit(PinRequest(Ask.ROLLBACK))

    def last_pin_answer(self) -> PinAnswer | None:
        """What became of the last pin or rollback asked for (GET /pin)."""
        return self._desk.last

    # --- the pass ----------------------------------------------------------------------------

    def refresh(self, *, poll: bool = True) -> SourceOutcome:
        failure = self._collect()
        if not self._restored:
            self._restored = True
            self._start_restore()
            failure = failure or self._collect()
        self._take_requests()
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
                self._follow()
                failure = self._collect()
                if failure is None and self._job is None:
                    self._follow()  # a pin was just dropped: the head is judged now
        self._polled_failure = failure
        return self._outcome(failure)

    # --- deciding -------------------------------------------------------------------------

    def _follow(self) -> None:
        """Judge the branch head, unless a pin is held or wanted (the head waits behind it)."""
        if self._pin is None and self._want is None and self._latest is not None:
            self._judge(self._latest)

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
            self._start(head, HEAD)

    def _start_restore(self) -> None:
        """After a restart, pick up the commit applied before, without redeploying."""
        record = self._store.applied()
        if record is not None:
            self._start(record.commit, RESTORE, config_path=record.config_path)

    def _start(
        self,
        commit: str,
        kind: str,
        *,
        config_path: str | None = None,
        request: PinRequest | None = None,
    ) -> None:
        path = config_path or self._config_path
        job = Job(commit, kind, request)

        def run(progress: Progress) -> Ready:
            tree = self._source.checkout(commit)
            if kind != RESTORE:
                job.info = self._timeline.describe(commit)
            config = self._load(tree, path)
            return Ready(self._prepare(config, progress))

        job.run = run
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
            lines, text = issue_lines(exc), str(exc)
            record = lambda: self._refuse(job, Verdict.INVALID, lines, text)  # noqa: E731
        except ReconcilerError as exc:
            text = str(exc)
            record = lambda: self._refuse(job, Verdict.UNREADABLE, (text,), text)  # noqa: E731
        except Exception as exc:  # a bug while preparing: report it, try again later
            log.exception("preparing commit %s failed", job.commit[:12])
            self._give_up_pin(job, f"internal error while preparing: {exc!r}")
            return Failure.of(RuntimeError(f"internal error while preparing: {exc!r}"))
        else:
            record = lambda: self._accept(job, ready.config)  # noqa: E731
        try:
            record()
        except StateError as exc:
            self._job = job  # the verdict could not be written (disk full): next time
            return Failure.of(exc)
        return None

    def _refuse(self, job: Job, verdict: Verdict, errors: tuple[str, ...], text: str) -> None:
        if job.kind == RESTORE:
            log.warning("could not restore applied commit %s: %s", job.commit[:12], text)
            return
        if job.kind == PIN:
            self._refuse_pin(job, errors)
            return
        now = self._clock()
        log.warning("commit %s was not applied (%s):\n%s", job.commit[:12], verdict, text)
        self._attempt = Attempt(job.commit, verdict, errors, now)
        message = text if verdict is Verdict.UNREADABLE else ""
        self._store.record_attempt(job.commit, verdict.value, errors, now, message)
        event = Event.INVALID if verdict is Verdict.INVALID else Event.ERROR
        self._timeline.note(TimelineEntry(job.commit, now, event, job.info, errors))

    def _accept(self, job: Job, config: ServeConfig) -> None:
        if job.kind == RESTORE:
            record = self._store.applied()
            received = record.received_at if record else self._clock()
            if self._target is None:  # a newer commit may have been accepted meanwhile
                self._target = Target(job.commit, config, received)
                self._changed = True
            log.info("resuming at applied commit %s", job.commit[:12])
            return
        if job.kind == PIN:
            self._hold(job, config)
            return
        if self._pin is not None or self._want is not None:
            # Ready, but a pin came meanwhile: it waits behind the pin (judged again on unpin).
            log.info("commit %s is valid; it waits behind the pin", job.commit[:12])
            return
        now = self._clock()
        changes = self._changes(config)
        document = json.dumps(dict(config.document), sort_keys=True)
        self._store.set_applied(job.commit, self._config_path, document, now)
        self._store.record_attempt(job.commit, Verdict.APPLIED.value, (), now)
        self._attempt = Attempt(job.commit, Verdict.APPLIED, (), now)
        self._target = Target(job.commit, config, now)
        self._changed = True
        self._timeline.note(TimelineEntry(job.commit, now, Event.APPLIED, job.info, (), changes))
        log.info("commit %s accepted: deploying", job.commit[:12])
        for warning in config.warnings:
            log.warning("commit %s: %s", job.commit[:12], warning)

    def _changes(self, config: ServeConfig) -> tuple[Change, ...]:
        return changes(self._target.config if self._target else None, config)

    # --- pins (the pass's side) ---------------------------------------------------------------

    def _take_requests(self) -> None:
        for request in self._desk.take():
            if request.ask is Ask.UNPIN:
                self._unpin(request)
                continue
            if request.ask is Ask.ROLLBACK and not self._choose_rollback(request):
                continue
            self._want_pin(request)
        want = self._want
        if self._pin is not None and self._target is None and want is None and self._job is None:
            # Pinned, and nothing runs: the pinned commit could not be restored after a restart.
            self._want = want = PinRequest(Ask.PIN, self._pin.commit, self._pin.reason)
        if want is not None and self._job is None and want.commit is not None:
            self._start(want.commit, PIN, request=want)

    def _choose_rollback(self, request: PinRequest) -> bool:
        current = self._target.commit if self._target else None
        choice = rollback_choice(self._store.history(ROLLBACK_HISTORY), current)
        if choice is None:
            text = f"no commit was applied before commit {short(current)}: nothing to roll back to"
            request.answer(PinAnswer(PinState.NO_PREVIOUS, None, text))
            return False
        request.commit, request.reason = choice, f"rollback from commit {short(current)}"
        return True

    def _want_pin(self, request: PinRequest) -> None:
        assert request.commit is not None
        if self._want is not None:
            self._want.answer(_superseded(self._want, f"a pin of {short(request.commit)}"))
        self._want = None
        if self._pin is not None and self._pin.commit == request.commit:
            request.answer(PinAnswer(PinState.PINNED, request.commit, self._pinned_text()))
        elif self._target is not None and self._target.commit == request.commit:
            self._take_pin(request, self._timeline.info_of(request.commit), ())  # it runs: hold it
        else:
            self._want = request

    def _hold(self, job: Job, config: ServeConfig) -> None:
        """A prepared pin: it becomes the target, held until unpinned."""
        request = job.request
        if request is None or request is not self._want:
            return  # superseded or unpinned while it was prepared
        now = self._clock()
        changes = self._changes(config)
        document = json.dumps(dict(config.document), sort_keys=True)
        self._store.set_applied(job.commit, self._config_path, document, now)
        self._take_pin(request, job.info, changes)
        self._target = Target(job.commit, config, now)
        self._changed = True

    def _take_pin(self, request: PinRequest, info: CommitInfo, changes: tuple[Change, ...]) -> None:
        assert request.commit is not None
        if self._pin is not None and self._pin.commit == request.commit:  # re-prepared
            self._want = None
            request.answer(PinAnswer(PinState.PINNED, request.commit, self._pinned_text()))
            return
        now = self._clock()
        self._store.set_pin(request.commit, now, request.reason)
        self._pin, self._want = Pin(request.commit, now, request.reason), None
        self._timeline.note(TimelineEntry(request.commit, now, Event.PINNED, info, (), changes,
                                 request.reason))  # fmt: skip
        log.info("pinned commit %s (%s)", request.commit[:12], request.reason)
        request.answer(PinAnswer(PinState.PINNED, request.commit, self._pinned_text()))

    def _refuse_pin(self, job: Job, errors: tuple[str, ...]) -> None:
        request = job.request
        if request is None or request is not self._want:
            return
        self._want = None
        now = self._clock()
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        text = f"commit {short(job.commit)} was not pinned: its config is invalid ({count})"
        if self._pin is not None and self._pin.commit == job.commit:
            # The pin held across a restart can no longer be applied (its config reads the
            # environment, which changed): drop it rather than run nothing.
            self._store.clear_pin()
            self._pin = None
            text = f"the pinned commit {short(job.commit)} is invalid now ({count}); unpinned"
        log.warning("%s:\n%s", text, "\n".join(errors))
        self._timeline.note(TimelineEntry(job.commit, now, Event.PIN_REFUSED, job.info, errors,
                                 message=request.reason))  # fmt: skip
        request.answer(PinAnswer(PinState.REFUSED, job.commit, text, errors))

    def _give_up_pin(self, job: Job, text: str) -> None:
        if job.request is not None and job.request is self._want:
            self._want = None
            job.request.answer(PinAnswer(PinState.REFUSED, job.commit, text, (text,)))

    def _unpin(self, request: PinRequest) -> None:
        if self._want is not None:
            self._want.answer(_superseded(self._want, "an unpin"))
            self._want = None
        pin = self._pin
        if pin is None:
            request.answer(PinAnswer(PinState.NOT_PINNED, None, "nothing was pinned"))
            return
        try:
            self._store.clear_pin()
        except StateError as exc:
            request.answer(PinAnswer(PinState.PINNED, pin.commit, f"could not unpin: {exc}"))
            return
        self._pin = None
        now = self._clock()
        info = self._timeline.info_of(pin.commit)
        self._timeline.note(TimelineEntry(pin.commit, now, Event.UNPINNED, info))
        log.info("unpinned commit %s: following the branch again", pin.commit[:12])
        text = f"unpinned commit {short(pin.commit)}: following the branch again"
        request.answer(PinAnswer(PinState.UNPINNED, pin.commit, text))

    def _pinned_text(self) -> str:
        pin = self._pin
        assert pin is not None
        behind = self._latest is not None and self._latest != pin.commit
        wait_text = f"; the branch is at {short(self._latest)}, waiting behind the pin"
        return f"pinned commit {short(pin.commit)}" + (wait_text if behind else "")

    def _outcome(self, failure: Failure | None, polled: bool = True) -> SourceOutcome:
        changed, self._changed = self._changed, False
        job = self._job
        preparing = (
            Preparing(job.commit, job.progress, pinning=job.kind == PIN)
            if job and job.kind != RESTORE
            else None
        )
        return SourceOutcome(
            target=self._target,
            latest=self._latest,
            attempt=self._attempt,
            failure=failure,
            changed=changed,
            preparing=preparing,
            polled=polled,
            pin=self._pin,
            timeline=self._timeline.entries,
        )


def _superseded(request: PinRequest, by: str) -> PinAnswer:
    text = f"the pin of commit {short(request.commit)} was superseded by {by}"
    return PinAnswer(PinState.SUPERSEDED, request.commit, text)
