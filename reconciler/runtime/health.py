"""Serve's controller-side health check, run from the reconciler: every `health_check_period_s`
each running replica is asked `GET /-/healthz` on its control port (the replica runs the user's
`check_health()` behind it, bounded by `health_check_timeout_s`). Three failures in a row
(Serve's REPLICA_HEALTH_CHECK_UNHEALTHY_THRESHOLD) make the replica unhealthy; one success
clears it.

Why not a Docker HEALTHCHECK: Docker runs one with `runc exec` in every replica every period,
about 80 ms of CPU each time counting runc, the shim and dockerd. At 100 replicas and the default
10 s period that was most of a core spent doing nothing, taken from the rollouts and the API. An
HTTP request from here costs about a millisecond.

One scheduler thread hands due checks to a few worker threads; a replica never has two checks in
flight, so a hung `check_health()` holds one worker for at most its timeout and delays no other
replica while workers remain. The threads run only while something is watched, and are daemon
threads: a check in flight never holds up the process's exit.

A replica turning unhealthy is replaced by the next pass; `on_unhealthy` asks for that pass at
once (the daemon's passes otherwise come at the git poll interval, which a webhook-driven setup
may set to an hour). A replica that exits is reported sooner by the engine's events (exits.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

UNHEALTHY_THRESHOLD = 3
_MAX_WAIT_S = 3600.0  # a period of 1e10 s is valid config; Condition.wait() cannot take it
CLIENT_MARGIN_S = 2.0  # the replica answers at its own timeout; wait a little longer for it

# (control url, timeout) -> None when healthy, else what went wrong in the user's words
Probe = Callable[[str, float], "str | None"]


@dataclass
class _Watched:
    url: str
    period_s: float
    timeout_s: float
    due: float
    counts_from: float  # failures before this (a start period) are not counted
    failures: int = 0
    error: str | None = None
    in_flight: bool = False


class HealthMonitor:
    """Watches replicas by container id; `verdict(cid)` says whether one is unhealthy and why."""

    def __init__(
        self,
        probe: Probe,
        *,
        workers: int = 8,
        threshold: int = UNHEALTHY_THRESHOLD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe, self._workers, self._threshold, self._clock = probe, workers, threshold, clock
        self._cond = threading.Condition()
        self._watched: dict[str, _Watched] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self._on_unhealthy: Callable[[str], None] | None = None

    def on_unhealthy(self, callback: Callable[[str], None] | None) -> None:
        """Call `callback(cid)` (from a worker thread) each time a replica becomes unhealthy:
        once as its failures reach the threshold, again only after a success in between."""
        with self._cond:
            self._on_unhealthy = callback

    def watch(
        self, cid: str, url: str, period_s: float, timeout_s: float, start_period_s: float = 0.0
    ) -> None:
        """Check `cid` every `period_s`, the first one period from now. Failures within
        `start_period_s` from now are not counted (Docker's start period: a replica still in
        `__init__` is given the health check timeout before it counts). Idempotent."""
        with self._cond:
            known = self._watched.get(cid)
            if self._closed or (known is not None and known.url == url):
                return
            # New, or restarted under the same id with another published port: start afresh.
            now = self._clock()
            self._watched[cid] = _Watched(
                url, period_s, timeout_s, due=now + period_s, counts_from=now + start_period_s
            )
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="health-monitor", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def retain(self, cids: Iterable[str]) -> None:
        """Stop watching every container not in `cids` (gone, draining, failed)."""
        keep = set(cids)
        with self._cond:
            for cid in set(self._watched) - keep:
                del self._watched[cid]
            self._cond.notify()

    def verdict(self, cid: str) -> str | None:
        """The last failure's text once `threshold` checks in a row have failed, else None."""
        with self._cond:
            w = self._watched.get(cid)
            if w is None or w.failures < self._threshold:
                return None
            return w.error or f"the replica's health check failed {w.failures} times in a row"

    def watching(self) -> int:
        with self._cond:
            return len(self._watched)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._watched.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # --- the scheduler thread -------------------------------------------------------------------

    def _run(self) -> None:
        work: queue.SimpleQueue[tuple[str, _Watched] | None] = queue.SimpleQueue()
        workers = [
            threading.Thread(target=self._work, args=(work,), name="health-check", daemon=True)
            for _ in range(self._workers)
        ]
        for worker in workers:
            worker.start()
        try:
            while True:
                with self._cond:
                    due = self._take_due()
                    if due is None:
                        self._thread = None  # in the same lock as the check: no watch() is lost
                        return
                for item in due:
                    work.put(item)
        except BaseException:
            with self._cond:
                if self._thread is threading.current_thread():
                    self._thread = None  # the next watch() starts another
            raise
        finally:
            for _ in workers:
                work.put(None)

    def _work(self, work: queue.SimpleQueue[tuple[str, _Watched] | None]) -> None:
        while (item := work.get()) is not None:
            self._check(*item)

    def _take_due(self) -> list[tuple[str, _Watched]] | None:
        """Wait (under the lock) until some check is due; None once nothing is watched."""
        while True:
            if self._closed or not self._watched:
                return None
            now = self._clock()
            due = [(cid, w) for cid, w in self._watched.items() if not w.in_flight and w.due <= now]
            if due:
                for _, w in due:
                    w.in_flight = True
                return due
            pending = [w.due for w in self._watched.values() if not w.in_flight]
            wait = min(min(pending) - now, _MAX_WAIT_S) if pending else None
            self._cond.wait(timeout=None if wait is None else max(0.0, wait))

    def _check(self, cid: str, w: _Watched) -> None:
        try:
            error = self._probe(w.url, w.timeout_s + CLIENT_MARGIN_S)
        except Exception as exc:  # a probe must never kill the worker; count it as a failure
            error = f"health check failed: {exc}"
        with self._cond:
            if self._watched.get(cid) is not w:
                return  # dropped, or watched afresh (a new port) while this check ran: stale
            now = self._clock()
            w.in_flight, w.due = False, now + w.period_s
            if error is None:
                w.failures, w.error = 0, None
            else:
                w.failures, w.error = w.failures + (now >= w.counts_from), error
            self._cond.notify()
            became_unhealthy = w.failures == self._threshold and error is not None
            callback = self._on_unhealthy
        if became_unhealthy and callback is not None:
            try:
                callback(cid)
            except Exception:  # the verdict stands; the next pass on schedule acts on it
                log.exception("the unhealthy-replica callback failed")
