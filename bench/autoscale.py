"""Section `autoscale`: a ramp of open-loop load, 0 -> high -> 0, through the ingress onto a
deployment that autoscales from zero (Serve's policy, delays set short), with the reconciler
run as the daemon runs it (passes on its own requeue, and at once on an autoscaling decision).
Recorded every 0.5 s: the offered rate, the replicas serving, the autoscaler's target and the
requests in flight it sees; plotted (PNG beside the JSON). Figures: the wait of the first request
at zero, the time from each rise of the load to the replicas it called for serving, and the
requests that failed (must be 0)."""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.core import Cleanup
from bench.driver import Driver
from bench.plot import BLUE, GREEN, ORANGE, Series, chart
from reconciler.model import ReplicaState
from tests.load_client import RateResult, hold_rate
from tests.support import free_port

APP = """\
import asyncio
from ray import serve


@serve.deployment
class Bench:
    async def __call__(self, request):
        await asyncio.sleep(0.1)  # 10 requests a second keep one in flight
        return "ok"


app = Bench.bind()
"""

CONFIG = """\
import_path: bench_app:app
host: 127.0.0.1
port: {port}
deployments:
  - name: Bench
    max_ongoing_requests: 4
    autoscaling_config:
      min_replicas: 0
      max_replicas: 8
      target_ongoing_requests: 1
      metrics_interval_s: 0.5
      look_back_period_s: 3
      upscale_delay_s: 1
      downscale_delay_s: 8
      downscale_to_zero_delay_s: 5
    health_check_period_s: 2
    graceful_shutdown_wait_loop_s: 0.2
    graceful_shutdown_timeout_s: 5
    ray_actor_options:
      num_cpus: 0.05
"""

# (offered requests a second, seconds): idle, a trickle from zero, up in steps, down, idle
RAMP = [(0, 4), (5, 16), (60, 16), (20, 12), (5, 10), (0, 24)]
QUICK_RAMP = [(0, 2), (5, 6), (60, 12), (5, 6), (0, 16)]


def run(cleanup: Cleanup, png: Path | None, quick: bool = False) -> dict[str, Any]:
    ramp = QUICK_RAMP if quick else RAMP
    with tempfile.TemporaryDirectory(prefix="bench-autoscale-") as tmp:
        root = Path(tmp)
        port = free_port()
        (root / "bench_app.py").write_text(APP)
        (root / "serve_config.yaml").write_text(CONFIG.format(port=port))
        d = Driver(cleanup, root, "auto")
        try:
            d.converge()
            return _drive(d, f"http://127.0.0.1:{port}/", ramp, png)
        finally:
            d.engine.close()
            cleanup.remove_owner(d.owner)


def _drive(d: Driver, url: str, ramp: list[tuple[int, int]], png: Path | None) -> dict[str, Any]:
    wake, stop = threading.Event(), threading.Event()
    d.reconciler.autoscaler.on_change(wake.set)
    d.engine.on_load(d.reconciler.autoscaler.record, 0.5)
    passes = threading.Thread(target=_passes, args=(d, wake, stop), daemon=True)
    timeline: list[dict[str, float]] = []
    rate_now = [0.0]
    t0 = time.monotonic()
    recorder = threading.Thread(target=_record, args=(d, timeline, rate_now, t0, stop), daemon=True)
    passes.start()
    recorder.start()
    stages: list[dict[str, Any]] = []
    try:
        for rate, seconds in ramp:
            start = time.monotonic() - t0
            rate_now[0] = rate
            if rate:
                result = hold_rate(url, rate=rate, seconds=seconds)
            else:
                stop.wait(seconds)
                result = RateResult("idle", 0, 0, 0, 0.0)
            stages.append(
                {
                    "rate": rate,
                    "seconds": seconds,
                    "start_s": round(start, 2),
                    "sent": result.sent,
                    "errors": result.errors,
                    "ms": result.ms,
                }
            )
    finally:
        stop.set()
        passes.join(10)
        recorder.join(10)
    out = _figures(stages, timeline)
    out["timeline"] = timeline
    out["stages"] = stages
    if png is not None:
        out["png"] = str(_plot(timeline, png))
    return out


def _passes(d: Driver, wake: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        delay = d.reconciler.run_pass()
        wake.wait(min(delay if delay is not None else 1.0, 1.0))
        wake.clear()


def _record(
    d: Driver,
    timeline: list[dict[str, float]],
    rate: list[float],
    t0: float,
    stop: threading.Event,
) -> None:
    """Every 0.5 s, from what the reconciler already has (no call of its own to Docker): the
    replicas its last pass saw RUNNING, and its autoscaler's state."""
    while not stop.wait(0.5):
        status = list(d.reconciler.autoscaler.status().values())
        auto = status[0] if status else None
        apps = d.reconciler.snapshot.applications
        states = dict(apps[0].deployments[0].replica_states) if apps else {}
        serving = states.get(ReplicaState.RUNNING.value, 0)
        timeline.append(
            {
                "t": round(time.monotonic() - t0, 2),
                "rate": rate[0],
                "serving": serving,
                "target": auto.target_replicas if auto else 0,
                "in_flight": round(auto.in_flight or 0.0, 2) if auto else 0.0,
            }
        )


def _figures(stages: list[dict[str, Any]], timeline: list[dict[str, float]]) -> dict[str, Any]:
    """The first request's wait at zero, and per rise of the load the seconds until the
    replicas serving reached the largest target that load stage set."""
    out: dict[str, Any] = {
        "requests": sum(s["sent"] for s in stages),
        "failed": sum(s["errors"] for s in stages),
        "peak_replicas": max((p["serving"] for p in timeline), default=0),
    }
    first = next((s for s in stages if s["rate"]), None)
    if first is not None:
        out["from_zero_first_wait_ms"] = first["ms"].get("max", 0.0)
    rises = []
    for before, stage in itertools.pairwise(stages):
        if stage["rate"] <= before["rate"] or not before["rate"]:
            continue
        start, end = stage["start_s"], stage["start_s"] + stage["seconds"]
        window = [p for p in timeline if start <= p["t"] <= end]
        if not window:
            continue
        at_start, peak = window[0]["serving"], max(p["target"] for p in window)
        decided = next((p["t"] for p in window if p["target"] > window[0]["target"]), None)
        first = next((p["t"] for p in window if p["serving"] > at_start), None)
        reached = next((p["t"] for p in window if p["serving"] >= peak), None)
        rises.append(
            {
                "from_rate": before["rate"],
                "to_rate": stage["rate"],
                "serving_before": at_start,
                "target": peak,
                "decided_after_s": None if decided is None else round(decided - start, 2),
                "first_new_serving_s": None if first is None else round(first - start, 2),
                "target_serving_s": None if reached is None else round(reached - start, 2),
            }
        )
    out["rises"] = rises
    return out


def _plot(timeline: list[dict[str, float]], path: Path) -> Path:
    series = [
        Series("replicas serving", [(p["t"], p["serving"]) for p in timeline], BLUE, step=True),
        Series("target", [(p["t"], p["target"]) for p in timeline], GREEN, step=True),
        Series(
            "offered load req/s",
            [(p["t"], p["rate"]) for p in timeline],
            ORANGE,
            right=True,
            step=True,
        ),
    ]
    data = chart(
        series,
        title="autoscale: replicas against load",
        x_label="time (s)",
        left_label="replicas",
        right_label="req/s",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
