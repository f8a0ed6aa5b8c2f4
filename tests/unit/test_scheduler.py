"""PassScheduler with a real APScheduler: requeue-soon, triggers, no overlap, resilience to
exceptions and the stuck-pass health check. Waits poll a condition with a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from reconciler.scheduler import PassScheduler, default_jitter

DEADLINE_S = 10.0


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    ready = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        ready.wait(0.005)  # a poll tick, not a wait for the outcome


class Recorder:
    """A run_pass that counts passes and the most that ever ran at once."""

    def __init__(self, results: Callable[[int], float | None] = lambda n: None) -> None:
        self.results = results
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()

    def __call__(self) -> float | None:
        with self._lock:
            self.calls += 1
            n = self.calls
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.gate.wait(DEADLINE_S)
            return self.results(n)
        finally:
            with self._lock:
                self.active -= 1


@pytest.fixture
def schedulers() -> Iterator[list[PassScheduler]]:
    made: list[PassScheduler] = []
    yield made
    for s in made:
        s.shutdown(wait=False)


def start(
    made: list[PassScheduler], run: Callable[[], float | None], **kw: object
) -> PassScheduler:
    s = PassScheduler(run, **kw)  # type: ignore[arg-type]
    made.append(s)
    s.start()
    return s


def test_interval_and_jitter_are_validated() -> None:
    with pytest.raises(ValueError, match="at least 1s"):
        PassScheduler(lambda: None, interval_s=0.5)
    with pytest.raises(ValueError, match="at least 1s"):
        PassScheduler(lambda: None, interval_s=float("nan"))
    with pytest.raises(ValueError, match="jitter"):
        PassScheduler(lambda: None, interval_s=10, jitter_s=-1)
    assert default_jitter(15) == pytest.approx(1.5)
    assert default_jitter(600) == 5.0


def test_first_pass_runs_at_start(schedulers: list[PassScheduler]) -> None:
    rec = Recorder()
    s = start(schedulers, rec, interval_s=60)
    wait_until(lambda: s.passes == 1)
    assert rec.calls == 1
    assert s.last_pass_started is not None
    assert s.last_pass_finished is not None
    assert s.last_pass_finished >= s.last_pass_started


def test_a_pass_asking_for_soon_runs_again_soon(schedulers: list[PassScheduler]) -> None:
    rec = Recorder(lambda n: 0.05 if n < 4 else None)
    s = start(schedulers, rec, interval_s=60)

    wait_until(lambda: s.passes == 4, timeout=5)
    next_at = s.next_pass_at
    assert next_at is not None
    assert next_at - time.time() > 50  # settled: back to one interval


def test_a_backoff_longer_than_the_interval_is_honoured(schedulers: list[PassScheduler]) -> None:
    s = start(schedulers, Recorder(lambda n: 120.0), interval_s=5, jitter_s=0)
    wait_until(lambda: s.passes == 1)
    wait_until(lambda: (s.next_pass_at or 0) - time.time() > 100)


def test_trigger_runs_a_pass_promptly(schedulers: list[PassScheduler]) -> None:
    rec = Recorder()
    s = start(schedulers, rec, interval_s=60)
    wait_until(lambda: s.passes == 1)

    s.trigger()
    wait_until(lambda: s.passes == 2, timeout=3)


def test_trigger_during_a_pass_is_served_by_one_more_pass(schedulers: list[PassScheduler]) -> None:
    rec = Recorder()
    rec.gate.clear()
    s = start(schedulers, rec, interval_s=60)
    wait_until(lambda: rec.active == 1)
    for _ in range(5):
        s.trigger()

    rec.gate.set()
    wait_until(lambda: s.passes == 2, timeout=3)
    wait_until(lambda: (s.next_pass_at or 0) - time.time() > 50)  # and then no more
    assert rec.calls == 2


def test_overlapping_triggers_never_run_two_passes(schedulers: list[PassScheduler]) -> None:
    rec = Recorder(lambda n: 0.0 if n % 3 == 0 else None)
    s = start(schedulers, rec, interval_s=1, jitter_s=0)
    go = threading.Event()

    def hammer() -> None:
        go.wait(DEADLINE_S)
        for _ in range(200):
            s.trigger()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(DEADLINE_S)
    seen = rec.calls
    wait_until(lambda: rec.calls > seen)  # the last triggers are served too

    assert rec.max_active == 1
    assert rec.calls >= 2


def test_an_exception_does_not_stop_the_loop(schedulers: list[PassScheduler]) -> None:
    def flaky(n: int) -> float | None:
        if n <= 2:
            raise RuntimeError(f"boom {n}")
        return None

    rec = Recorder(flaky)
    s = start(schedulers, rec, interval_s=1, jitter_s=0)

    wait_until(lambda: s.passes >= 3, timeout=6)
    assert rec.calls >= 3


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_health_turns_false_for_a_stuck_pass(schedulers: list[PassScheduler]) -> None:
    clock = FakeClock()
    rec = Recorder()
    rec.gate.clear()
    s = PassScheduler(rec, interval_s=10, clock=clock)
    assert s.health()[0] is False  # not started
    schedulers.append(s)
    s.start()
    wait_until(lambda: rec.active == 1)
    assert s.health()[0] is True

    clock.now += 149
    assert s.health()[0] is True  # the window is max(3 intervals, MIN_HEALTH_WINDOW_S = 150 s)
    clock.now += 2
    healthy, why = s.health()
    assert healthy is False
    assert "stuck" in why

    rec.gate.set()
    wait_until(lambda: s.passes == 1)
    assert s.health()[0] is True


def test_health_turns_false_when_no_pass_finishes(schedulers: list[PassScheduler]) -> None:
    clock = FakeClock()
    s = start(schedulers, Recorder(), interval_s=60, clock=clock)
    wait_until(lambda: s.passes == 1)
    assert s.health()[0] is True

    clock.now += 181  # past 3 intervals on the fake clock; the real next pass is 60 s away
    healthy, why = s.health()
    assert healthy is False
    assert "finished" in why
