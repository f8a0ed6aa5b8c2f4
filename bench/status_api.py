"""Section `status-api`: GET /status under `wrk` (8 connections, flat out), idle and during a
rollout, and the rollout's time with and without that load (rollouts alternate, so drift hits
both). Then the same at a fixed 500 requests a second from an open-loop client
(tests/load_client.py: latency from each request's due time), the way dashboards and pollers
load it: flat out, wrk and the API take a whole core of two from the rollout by construction.

The rollout is a code commit pushed to the daemon's remote and announced by a signed webhook; it
is done when exactly N replicas answer with the new code version. During a rollout, wrk runs for
the length of the unloaded rollout before it, so all of its requests fall inside the rollout.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import wrk
from bench.core import Cleanup, median, wait_until
from bench.daemon import all_answer, post_webhook, running_daemon
from bench.workload import Workload
from tests.load_client import RateResult, hold_rate
from tests.support import Daemon, GitRemote, free_port, git

IDLE_S = 5.0
RATE = 500.0


def _rollout(
    cleanup: Cleanup, daemon: Daemon, remote: GitRemote, owner: str, n: int, i: int
) -> float:
    remote.edit("bench_app.py", f'VERSION = "v{i}"', f'VERSION = "v{i + 1}"')
    remote.commit_all(f"v{i + 1}", push=False)
    t0 = time.monotonic()
    git(remote.work, "push", "-q", "origin", "HEAD:main")
    post_webhook(daemon)
    wait_until(
        lambda: all_answer(cleanup, owner, n, "version", f"v{i + 1}"),
        timeout=300, interval=0.1, what=f"rollout to v{i + 1}",
    )  # fmt: skip
    return time.monotonic() - t0


def _hold(url: str, seconds: float, into: list[RateResult]) -> None:
    into.append(hold_rate(url, rate=RATE, seconds=seconds))


def run(
    cleanup: Cleanup, repeats: int, replicas: int = 10, idle_s: float = IDLE_S
) -> dict[str, Any]:
    idle, busy, plain_times, loaded_times = [], [], [], []
    rate_idle: list[RateResult] = []
    rate_busy: list[RateResult] = []
    rated_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
        workload = Workload(replicas=replicas, port=free_port())
        with running_daemon(
            cleanup, Path(tmp), workload, section="api", poll_s=3600.0, webhook=True
        ) as (daemon, remote, owner):
            url = daemon.url + "/status"
            version = 1
            for _ in range(repeats):
                idle.append(wrk.run(url, idle_s))
                plain = _rollout(cleanup, daemon, remote, owner, replicas, version)
                plain_times.append(plain)
                version += 1
                proc = cleanup.process(wrk.start(url, max(1.0, plain - 1.0)))
                loaded_times.append(_rollout(cleanup, daemon, remote, owner, replicas, version))
                version += 1
                busy.append(wrk.finish(proc))
                rate_idle.append(hold_rate(url, rate=RATE, seconds=idle_s))
                load = threading.Thread(target=_hold, args=(url, max(1.0, plain - 1.0), rate_busy))
                load.start()
                rated_times.append(_rollout(cleanup, daemon, remote, owner, replicas, version))
                version += 1
                load.join()
    return {
        "replicas": replicas,
        "idle_rps": median([r.rps for r in idle]),
        "idle_p99_ms": median([r.p99_ms for r in idle]),
        "rollout_rps": median([r.rps for r in busy]),
        "rollout_p99_ms": median([r.p99_ms for r in busy]),
        "errors": sum(r.errors for r in idle + busy),
        "rollout_s": median(plain_times),
        "rollout_under_wrk_s": median(loaded_times),
        "rollout_slowdown": median(loaded_times) / median(plain_times),
        "rate": RATE,
        "rate_client": rate_idle[0].client if rate_idle else "",
        "rate_idle_p99_ms": median([r.ms["p99"] for r in rate_idle]),
        "rate_rollout_p50_ms": median([r.ms["p50"] for r in rate_busy]),
        "rate_rollout_p99_ms": median([r.ms["p99"] for r in rate_busy]),
        "rate_errors": sum(r.errors for r in rate_idle + rate_busy),
        "rollout_under_rate_s": median(rated_times),
        "rollout_rate_slowdown": median(rated_times) / median(plain_times),
        "runs": repeats,
    }
