"""Section `dashboard`: the dashboard must slow neither the pass nor `GET /status`.

- The dashboard's own endpoints under `wrk` (8 connections, flat out): the page (`GET /`) and the
  poll the page makes (`GET /dashboard.json?since=REV`, no HTML while nothing changed).
- `GET /status` at a fixed 500 requests a second (the open-loop client of tests/load_client.py),
  idle: alone, beside 50 polls a second of an unchanged page (a hundred open pages polling every
  2 s), and beside 50 polls a second that all fetch the HTML (each page seeing every change);
  then during a rollout of the replicas (webhook-triggered), alone and beside the HTML polls,
  whose time is measured too. The variants alternate, from a settled daemon.
- In-process, what the pass pays for the dashboard: the per-replica rows and the replica events
  it adds to the snapshot (100 replicas), against the same deployment statuses without them; and
  rendering a 100-replica snapshot as HTML (done once per snapshot, by the first request).
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench import wrk
from bench.core import Cleanup, median, wait_until
from bench.daemon import running_daemon
from bench.status_api import _rollout
from bench.workload import Workload
from reconciler import events, status
from reconciler.api import dashboard
from reconciler.model import (
    ApplicationSpec,
    DeploymentSpec,
    HttpOptions,
    ObservedReplica,
    ReplicaState,
    ServeConfig,
    Snapshot,
)
from reconciler.outcome import IDLE_ENGINE, PassOutcome, SourceOutcome, Target
from reconciler.records import CommitInfo, Event, TimelineEntry
from tests.load_client import RateResult, hold_rate
from tests.support import free_port

IDLE_S = 5.0
RATE = 500.0  # GET /status a second
DASHBOARD_RATE = 50.0  # polls a second, every one fetching the HTML
IN_PROCESS_REPLICAS = 100


def _hold(url: str, rate: float, seconds: float, into: list[RateResult]) -> None:
    into.append(hold_rate(url, rate=rate, seconds=seconds))


def _with_dashboards(url: str, seconds: float, measure: Callable[[], Any]) -> Any:
    """`measure()` while DASHBOARD_RATE polls a second hit the dashboard for `seconds`."""
    load: list[RateResult] = []
    thread = threading.Thread(target=_hold, args=(url, DASHBOARD_RATE, seconds, load))
    thread.start()
    try:
        return measure()
    finally:
        thread.join()


def _settled(daemon: Any) -> bool:
    s = requests.get(daemon.url + "/status", timeout=10).json()
    return bool(s["app_status"]["status"] == "RUNNING" and s["retry"] is None)


def _p99s(results: list[RateResult]) -> list[float]:
    return [round(r.ms["p99"], 2) for r in results]


def run(
    cleanup: Cleanup, repeats: int, replicas: int = 10, idle_s: float = IDLE_S
) -> dict[str, Any]:
    idle: dict[str, list[RateResult]] = {"alone": [], "since": [], "html": []}
    busy: dict[str, list[RateResult]] = {"alone": [], "html": []}
    times: dict[str, list[float]] = {"alone": [], "html": []}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        workload = Workload(replicas=replicas, port=free_port())
        with running_daemon(
            cleanup, Path(tmp), workload, section="dash", poll_s=3600.0, webhook=True
        ) as (daemon, remote, owner):
            # The replicas answer before the pass that started them has ended: measure from a
            # settled daemon, whose snapshot (and page) stays put.
            wait_until(lambda: _settled(daemon), timeout=60, what="the daemon settled")
            status_url, poll_url = daemon.url + "/status", daemon.url + "/dashboard.json"
            rev = requests.get(poll_url, timeout=10).json()["rev"]
            loads = {"since": f"{poll_url}?since={rev}", "html": poll_url}
            page = wrk.run(daemon.url + "/", idle_s)
            poll = wrk.run(loads["since"], idle_s)
            for _ in range(max(5, repeats)):  # the idle figures are noisy: more runs, interleaved
                for kind, into in idle.items():
                    measure = lambda: hold_rate(status_url, rate=RATE, seconds=idle_s)  # noqa: E731
                    into.append(
                        measure()
                        if kind == "alone"
                        else _with_dashboards(loads[kind], idle_s, measure)
                    )
            version = 1
            for _ in range(repeats):
                for kind in ("alone", "html"):
                    seconds = max(2.0, median(times["alone"] or [8.0]) - 1.0)
                    load = threading.Thread(
                        target=_hold, args=(status_url, RATE, seconds, busy[kind])
                    )  # /status at 500/s through the rollout
                    load.start()
                    roll = lambda v=version: _rollout(cleanup, daemon, remote, owner, replicas, v)  # noqa: E731
                    took = roll() if kind == "alone" else _with_dashboards(poll_url, seconds, roll)
                    load.join()
                    times[kind].append(took)
                    version += 1
    return {
        "replicas": replicas,
        "page_rps": page.rps,
        "page_p99_ms": page.p99_ms,
        "poll_rps": poll.rps,
        "poll_p99_ms": poll.p99_ms,
        "rate": RATE,
        "dashboard_rate": DASHBOARD_RATE,
        "idle_p99_ms": median(_p99s(idle["alone"])),
        "idle_since_p99_ms": median(_p99s(idle["since"])),
        "idle_dash_p99_ms": median(_p99s(idle["html"])),
        "idle_p99_runs_ms": {k: _p99s(v) for k, v in idle.items()},
        "rollout_p99_ms": median(_p99s(busy["alone"])),
        "rollout_dash_p99_ms": median(_p99s(busy["html"])),
        "rollout_p99_runs_ms": {k: _p99s(v) for k, v in busy.items()},
        "errors": sum(r.errors for v in (*idle.values(), *busy.values()) for r in v),
        "rollout_s": median(times["alone"]),
        "rollout_dash_s": median(times["html"]),
        "rollout_dash_ratio": median(times["html"]) / median(times["alone"]),
        "rollout_runs_s": times["alone"],
        "rollout_dash_runs_s": times["html"],
        "runs": repeats,
        **_in_process(),
    }


# --- in-process --------------------------------------------------------------------------------


def _world(n: int) -> tuple[ServeConfig, list[ObservedReplica]]:
    spec = DeploymentSpec(app="default", name="D", import_path="m:app", num_replicas=n,
                          route_prefix="/", is_ingress=True)  # fmt: skip
    app = ApplicationSpec("default", "/", "m:app", "D", (spec,))
    config = ServeConfig("single", HttpOptions(), (app,))
    observed = [
        ObservedReplica(
            f"c{i}",
            f"serve-b-default-D-{i}",
            "default",
            "D",
            i,
            spec.version,
            ReplicaState.RUNNING,
            spec.user_config_hash,
            created_at=1.0,
        )
        for i in range(n)
    ]
    return config, observed


def _per_call_us(fn: Callable[[], object], seconds: float = 1.0) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        fn()
        calls += 1
    return elapsed / calls * 1e6


def _in_process(n: int = IN_PROCESS_REPLICAS) -> dict[str, float]:
    config, observed = _world(n)
    seen = {r.container_id: r for r in observed}
    log = events.EventLog()

    def with_extras() -> object:
        deployments = status.deployment_statuses(config, observed, {}, 2.0)
        log.add(events.between(seen, observed, 2.0))
        return deployments

    def without_rows() -> object:
        return status.deployment_statuses(config, observed, {}, 2.0)

    plain = status._rows
    with_runs, without_runs = [], []
    for _ in range(5):  # interleaved, the machine is noisy
        with_runs.append(_per_call_us(with_extras, 0.3))
        status._rows = lambda view: ()  # type: ignore[assignment]
        try:
            without_runs.append(_per_call_us(without_rows, 0.3))
        finally:
            status._rows = plain  # type: ignore[assignment]
    with_us, without_us = median(with_runs), median(without_runs)
    return {
        "statuses_us": without_us,
        "statuses_with_extras_us": with_us,
        "extras_ratio": with_us / without_us,
        "render_ms": _per_call_us(lambda: dashboard.live(_snapshot(config, observed), actions=True))
        / 1000,
    }


def _snapshot(config: ServeConfig, observed: list[ObservedReplica]) -> Snapshot:
    deployments = status.deployment_statuses(config, observed, {}, 2.0)
    apps = status.application_statuses(config, deployments, {}, 1.0)
    info = CommitInfo("Ada", 1.0, "a commit")
    timeline = tuple(TimelineEntry(f"{i:040x}", float(i), Event.APPLIED, info) for i in range(30))
    source = SourceOutcome(Target("a" * 40, config, 1.0), "a" * 40, None, timeline=timeline)
    outcome = PassOutcome(source, IDLE_ENGINE, 1.0, 0.01)
    ring = events.EventLog()
    ring.add(events.between({}, observed, 2.0))
    return status.compose(outcome, apps, redact=lambda c: {}, passes=1, events=ring.recent())
