"""The pass scheduler: runs the reconcile pass on an interval, one pass at a time, and sooner when
asked (a webhook) or when the last pass wants it (a rollout in progress, a backoff). The only
module importing APScheduler.

Overlap is ruled out twice: the job has `max_instances=1` and the pass holds a lock. A request
for a pass that arrives while one runs is remembered and served by one more pass right after it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 1.0
# Longer than the longest backoff a pass may ask for (backoff.MAX_BACKOFF_S), with margin, so a
# loop that is only backing off from an unreachable engine or remote is not reported as stuck.
MIN_HEALTH_WINDOW_S = 150.0
_JOB = "reconcile-pass"


def default_jitter(interval_s: float) -> float:
    """Argo-style jitter so that many reconcilers do not hit one git host in step."""
    return min(interval_s * 0.1, 5.0)


class PassScheduler:
    """Calls `run_pass` every `interval_s` (+ up to `jitter_s`), never twice at once.

    `run_pass` returns how soon the next pass should run, in seconds, or None for one interval.
    """

    def __init__(
        self,
        run_pass: Callable[[], float | None],
        *,
        interval_s: float = 15.0,
        jitter_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not interval_s >= MIN_INTERVAL_S:  # also refuses NaN
            raise ValueError(f"poll interval must be at least {MIN_INTERVAL_S:g}s: {interval_s}")
        jitter = default_jitter(interval_s) if jitter_s is None else jitter_s
        if not 0.0 <= jitter <= interval_s:
            raise ValueError(f"jitter must be between 0 and the interval, not {jitter_s}")
        self._run_pass = run_pass
        self._interval = float(interval_s)
        self._jitter = float(jitter)
        self._clock = clock
        self._pass_lock = threading.Lock()  # no two passes, whoever asks
        self._state = threading.Lock()  # guards the fields below
        self._running = False  # from the pass's start until APScheduler has freed its slot
        self._in_pass = False  # while run_pass itself runs (what health() judges)
        self._pending = False
        self._started_at: float | None = None
        self._last_started: float | None = None
        self._last_finished: float | None = None
        self._passes = 0
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=1)}, timezone=UTC
        )
        self._scheduler.add_listener(self._on_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self._scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)

    # --- control ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop; the first pass runs at once."""
        trigger = IntervalTrigger(seconds=self._interval, jitter=self._jitter or None, timezone=UTC)
        self._scheduler.add_job(
            self._pass,
            trigger,
            id=_JOB,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,  # a late pass still runs (once, coalesced)
            next_run_time=_now(),
        )
        self._started_at = self._clock()
        self._scheduler.start()

    def trigger(self) -> None:
        """Ask for a pass now. Coalesces with a pass already queued; a pass already running is
        followed by exactly one more."""
        with self._state:
            if self._running:
                self._pending = True
                return
        self._requeue(0.0)

    def shutdown(self, wait: bool = True) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)

    # --- observation --------------------------------------------------------------------

    @property
    def last_pass_started(self) -> float | None:
        return self._last_started

    @property
    def last_pass_finished(self) -> float | None:
        return self._last_finished

    @property
    def passes(self) -> int:
        """Passes finished so far, including those that raised."""
        return self._passes

    @property
    def next_pass_at(self) -> float | None:
        """Wall time (time.time(), not the injected clock) of the next scheduled pass."""
        job = self._scheduler.get_job(_JOB)
        when = getattr(job, "next_run_time", None)
        return when.timestamp() if isinstance(when, datetime) else None

    def health(self) -> tuple[bool, str]:
        """(healthy, why). Unhealthy when no pass has finished for max(3 intervals, 150 s) or one
        has been running that long (stuck)."""
        window = max(3 * self._interval, MIN_HEALTH_WINDOW_S)
        now = self._clock()
        with self._state:
            running, started, finished = self._in_pass, self._last_started, self._last_finished
        if self._started_at is None:
            return False, "the scheduler has not started"
        if running and started is not None and now - started > window:
            return False, f"a reconcile pass has been running for {now - started:.0f}s (stuck?)"
        since = finished if finished is not None else self._started_at
        if now - since > window:
            what = "the last reconcile pass finished" if finished else "started, no pass finished"
            return False, f"{what} {now - since:.0f}s ago (limit {window:.0f}s)"
        if finished is None:
            return True, "starting: the first pass is running"
        return True, f"last pass finished {now - finished:.1f}s ago"

    # --- the job ------------------------------------------------------------------------

    def _pass(self) -> float | None:
        with self._pass_lock:
            with self._state:
                self._running, self._pending = True, False  # this pass serves earlier requests
                self._in_pass = True
                self._last_started = self._clock()
            try:
                return self._run_pass()
            except Exception:
                log.exception("reconcile pass failed; the next one runs on schedule")
                return None
            finally:
                with self._state:
                    self._in_pass = False
                    self._last_finished = self._clock()
                    self._passes += 1

    def _on_done(self, event: JobEvent) -> None:
        # Runs after APScheduler has released the job's instance slot, so a requeue made now
        # can never be refused as "maximum number of running instances reached".
        with self._state:
            self._running, pending, self._pending = False, self._pending, False
        delay = getattr(event, "retval", None)
        if pending:
            delay = 0.0
        if isinstance(delay, int | float):
            # A pass that ends before APScheduler finishes submitting it calls us on the
            # scheduler's own thread, which then overwrites next_run_time with the interval.
            # From another thread, the requeue waits for the scheduler's lock and lands last.
            worker = threading.Thread(
                target=self._requeue, args=(max(0.0, float(delay)),), daemon=True
            )
            worker.start()

    def _on_skipped(self, event: JobEvent) -> None:
        # Skipped because a pass holds the slot: serve the request once that pass is done. If
        # the pass has not begun yet it reads the newest state anyway, so nothing is owed.
        with self._state:
            if self._running:
                self._pending = True

    def _requeue(self, delay_s: float) -> None:
        try:
            self._scheduler.modify_job(_JOB, next_run_time=_now() + timedelta(seconds=delay_s))
        except JobLookupError:
            log.debug("no pass job to requeue (not started or shut down)")


def _now() -> datetime:
    return datetime.now(UTC)
