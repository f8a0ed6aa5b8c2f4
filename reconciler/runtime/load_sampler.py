"""The ingress's load, sampled on a short tick independent of the git poll: one `show stat`
limited to backends (`-1 2 -1`, one line per deployment however many replicas it has) through
the ingress's runtime API, and each backend's `scur` handed on: the requests running on the
deployment's replicas, those queued for one (`qcur`) and those held while it has none (the
scale-from-zero wait), but not idle kept-alive connections. Handle calls between deployments
pass the router frontend into the same backends and count the same. No Docker here.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Protocol

from reconciler.runtime.haproxy_admin import BACKENDS, AdminError, HaproxyAdmin

log = logging.getLogger(__name__)

LoadSink = Callable[[float, dict[str, float]], None]  # (wall time, backend -> in flight)


def read_loads(admin: HaproxyAdmin) -> dict[str, float]:
    """Requests in flight per backend, from one `show stat` of the backends."""
    return {row.proxy: float(row.scur) for row in admin.show_stat(BACKENDS) if row.is_backend}


def summed(loads: Iterable[dict[str, float]]) -> dict[str, float]:
    """Backend loads of several ingresses (a swarm's, one per node) added up."""
    total: dict[str, float] = {}
    for one in loads:
        for backend, n in one.items():
            total[backend] = total.get(backend, 0.0) + n
    return total


class LoadSampler:
    """A daemon thread: every `tick_s`, what `read()` returns (backend -> in flight; None: no
    ingress, nothing is reported) goes to `sink`. A failing read (AdminError) is logged once per
    failure run and retried on the next tick."""

    def __init__(
        self,
        read: Callable[[], dict[str, float] | None],
        sink: LoadSink,
        tick_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read, self._sink, self._tick, self._clock = read, sink, tick_s, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def sample_once(self) -> bool:
        """One tick's work; False when there was nothing to read."""
        try:
            loads = self._read()
        except AdminError as exc:
            if not self._failing:
                log.warning("cannot read the ingress's load (autoscaling holds): %s", exc)
            self._failing = True
            return False
        self._failing = False
        if loads is None:
            return False
        self._sink(self._clock(), loads)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                self.sample_once()
            except Exception:  # the sink is the autoscaler: never let a bug end the sampling
                log.exception("autoscaling: handling a load sample failed")


class LoadSource(Protocol):
    """An ingress that can say its load: each backend's requests in flight (None: no ingress)."""

    def backend_loads(self) -> dict[str, float] | None: ...


def sample(source: LoadSource, sink: LoadSink, tick_s: float, owner: object) -> LoadSampler:
    """A started sampler of `source`, held weakly (the sampler's thread must not keep the
    ingress alive) and stopped with `owner` (the engine) when nothing else stops it first."""
    ref = weakref.ref(source)

    def read() -> dict[str, float] | None:
        alive = ref()
        return alive.backend_loads() if alive is not None else None

    sampler = LoadSampler(read, sink, tick_s)
    weakref.finalize(owner, sampler.close).atexit = False
    sampler.start()
    return sampler
