"""The health monitor's rules (Serve's controller-side check), against a behavioural model of a
replica's /-/healthz: three failures in a row make a replica unhealthy, one success clears it,
failures within the start period do not count, a hung check delays no other replica. Real threads,
a real clock; the periods are short."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from reconciler.runtime.health import HealthMonitor
from tests.support import WaitTimeout, wait_for


class Replicas:
    """url -> what its /-/healthz says now (None = healthy); 'hang' blocks until released."""

    def __init__(self) -> None:
        self.says: dict[str, str | None] = {}
        self.calls: dict[str, int] = {}
        self.release = threading.Event()
        self.lock = threading.Lock()

    def probe(self, url: str, timeout: float) -> str | None:
        with self.lock:
            self.calls[url] = self.calls.get(url, 0) + 1
            answer = self.says.get(url)
        if answer == "hang":
            self.release.wait(timeout)
            return f"health check failed: timed out after {timeout}s"
        return answer

    def count(self, url: str) -> int:
        with self.lock:
            return self.calls.get(url, 0)


@pytest.fixture
def replicas() -> Iterator[Replicas]:
    r = Replicas()
    yield r
    r.release.set()


@pytest.fixture
def monitor(replicas: Replicas) -> Iterator[HealthMonitor]:
    m = HealthMonitor(replicas.probe, workers=4)
    yield m
    m.close()


def test_three_failures_in_a_row_make_a_replica_unhealthy_and_a_success_clears_it(
    monitor: HealthMonitor, replicas: Replicas
) -> None:
    replicas.says["u"] = "ValueError: database gone"
    monitor.watch("c", "u", period_s=0.05, timeout_s=1.0)
    assert monitor.verdict("c") is None  # nothing counted yet
    wait_for(lambda: monitor.verdict("c"), timeout=5, interval=0.01, what="unhealthy")
    assert monitor.verdict("c") == "ValueError: database gone"
    assert replicas.count("u") >= 3
    replicas.says["u"] = None
    wait_for(lambda: monitor.verdict("c") is None, timeout=5, interval=0.01, what="recovered")


def test_failures_in_the_start_period_do_not_count(
    monitor: HealthMonitor, replicas: Replicas
) -> None:
    replicas.says["u"] = "__init__ has not returned after 0s"
    monitor.watch("c", "u", period_s=0.02, timeout_s=1.0, start_period_s=2.0)
    wait_for(lambda: replicas.count("u") >= 5, timeout=5, interval=0.01, what="probes")
    assert monitor.verdict("c") is None  # 5+ failures, all inside the start period
    wait_for(lambda: monitor.verdict("c"), timeout=5, interval=0.01, what="counted afterwards")


def test_a_hung_check_delays_no_other_replica(monitor: HealthMonitor, replicas: Replicas) -> None:
    replicas.says["hung"] = "hang"
    monitor.watch("h", "hung", period_s=0.02, timeout_s=30.0)
    monitor.watch("ok", "fine", period_s=0.02, timeout_s=30.0)
    wait_for(lambda: replicas.count("fine") >= 20, timeout=5, interval=0.01, what="other probes")
    assert replicas.count("hung") == 1  # never two checks in flight for one replica
    assert monitor.verdict("h") is None and monitor.verdict("ok") is None


def test_retain_stops_watching_and_the_thread_ends_with_nothing_to_watch(
    monitor: HealthMonitor, replicas: Replicas
) -> None:
    replicas.says["u"] = "boom"
    monitor.watch("c", "u", period_s=0.02, timeout_s=1.0)
    wait_for(lambda: monitor.verdict("c"), timeout=5, interval=0.01, what="unhealthy")
    monitor.retain(())
    assert monitor.watching() == 0 and monitor.verdict("c") is None
    wait_for(lambda: monitor._thread is None, timeout=5, interval=0.01, what="the scheduler to end")
    seen = replicas.count("u")
    monitor.watch("c2", "u", period_s=0.02, timeout_s=1.0)  # and starts again when needed
    wait_for(lambda: replicas.count("u") > seen, timeout=5, interval=0.01, what="probing again")


def test_a_probe_that_raises_counts_as_a_failure(replicas: Replicas) -> None:
    def broken(url: str, timeout: float) -> str | None:
        raise RuntimeError("bug in the probe")

    m = HealthMonitor(broken)
    try:
        m.watch("c", "u", period_s=0.02, timeout_s=1.0)
        wait_for(lambda: m.verdict("c"), timeout=5, interval=0.01, what="unhealthy")
        assert "bug in the probe" in (m.verdict("c") or "")
    finally:
        m.close()


def test_a_dropped_engine_stops_its_checks() -> None:
    import gc

    from reconciler.runtime.docker_engine import DockerEngine

    engine = DockerEngine(instance="t-health-gc", default_image="none")
    monitor = engine._health_monitor
    monitor.watch("c", "http://127.0.0.1:9", period_s=30.0, timeout_s=1.0)
    assert monitor.watching() == 1
    del engine
    gc.collect()
    assert monitor.watching() == 0 and monitor._thread is None


def test_a_huge_period_does_not_stop_the_checks_of_others(
    monitor: HealthMonitor, replicas: Replicas
) -> None:
    monitor.watch("slow", "never", period_s=1e10, timeout_s=1.0)  # valid config
    replicas.says["u"] = "boom"
    monitor.watch("c", "u", period_s=0.02, timeout_s=1.0)
    wait_for(lambda: monitor.verdict("c"), timeout=5, interval=0.01, what="unhealthy")
    assert replicas.count("never") == 0


def test_a_new_control_url_under_the_same_id_starts_afresh(
    monitor: HealthMonitor, replicas: Replicas
) -> None:
    replicas.says["old"] = "health check failed: connection refused"  # the port before a restart
    monitor.watch("c", "old", period_s=0.02, timeout_s=1.0)
    wait_for(lambda: monitor.verdict("c"), timeout=5, interval=0.01, what="unhealthy")
    monitor.watch("c", "new", period_s=0.02, timeout_s=1.0)  # `docker restart`: a new port
    assert monitor.verdict("c") is None
    wait_for(lambda: replicas.count("new") >= 5, timeout=5, interval=0.01, what="new probes")
    assert monitor.verdict("c") is None


def test_a_check_of_the_old_port_does_not_land_on_the_new_one() -> None:
    # A check of the old url still running when the replica is watched afresh (a new port) must
    # not count for the new record, nor clear its in-flight mark (two checks at once).
    old_returns, old_done, new_returns = threading.Event(), threading.Event(), threading.Event()
    seen: list[str] = []

    def probe(url: str, timeout: float) -> str | None:
        seen.append(url)
        if url == "old":
            old_returns.wait(10)
            old_done.set()
            return "health check failed: connection refused"
        new_returns.wait(10)  # the new port's first check is still running throughout
        return None

    monitor = HealthMonitor(probe, workers=4, threshold=1)
    try:
        monitor.watch("c", "old", period_s=0.02, timeout_s=1.0)
        wait_for(lambda: "old" in seen, timeout=5, interval=0.01, what="the old check")
        monitor.watch("c", "new", period_s=0.02, timeout_s=1.0)
        wait_for(lambda: "new" in seen, timeout=5, interval=0.01, what="the new check")
        old_returns.set()
        assert old_done.wait(5)
        with pytest.raises(WaitTimeout):  # with the stale result applied: at once, and it stays
            wait_for(
                lambda: monitor.verdict("c") or seen.count("new") > 1,
                timeout=1.0,
                interval=0.01,
                what="a verdict or a second check in flight",
            )
    finally:
        old_returns.set()
        new_returns.set()
        monitor.close()


def test_on_unhealthy_is_called_once_each_time_a_replica_turns_unhealthy(
    monitor: HealthMonitor, replicas: Replicas
) -> None:
    calls: list[str] = []
    monitor.on_unhealthy(calls.append)
    replicas.says["u"] = "ValueError: database gone"
    monitor.watch("c", "u", period_s=0.02, timeout_s=1.0)
    wait_for(lambda: calls == ["c"], timeout=5, interval=0.01, what="the first call")
    seen = replicas.count("u")
    wait_for(lambda: replicas.count("u") >= seen + 5, timeout=5, interval=0.01, what="more checks")
    assert calls == ["c"]  # still unhealthy: not called again
    replicas.says["u"] = None
    wait_for(lambda: monitor.verdict("c") is None, timeout=5, interval=0.01, what="recovered")
    replicas.says["u"] = "ValueError: database gone again"
    wait_for(lambda: calls == ["c", "c"], timeout=5, interval=0.01, what="the second turn")


def test_a_raising_on_unhealthy_callback_changes_nothing_else(
    monitor: HealthMonitor, replicas: Replicas
) -> None:
    def broken(cid: str) -> None:
        raise RuntimeError("the scheduler is gone")

    monitor.on_unhealthy(broken)
    replicas.says["u"] = "ValueError: database gone"
    monitor.watch("c", "u", period_s=0.02, timeout_s=1.0)
    wait_for(lambda: monitor.verdict("c"), timeout=5, interval=0.01, what="unhealthy")
    seen = replicas.count("u")
    wait_for(lambda: replicas.count("u") >= seen + 3, timeout=5, interval=0.01, what="checks go on")
    assert monitor.verdict("c") == "ValueError: database gone"
