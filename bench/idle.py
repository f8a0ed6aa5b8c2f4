"""Section `idle-pass`: what a pass costs when nothing is to be done, at growing replica counts.

One in-process reconciler scales one deployment up through the sizes; at each size, after it
has settled, `PASSES` passes are timed one by one: wall time, CPU time of this process
(`time.process_time`, all threads), and Docker API requests (counted by a response hook on the
docker client's session). The figures are per pass, median over the passes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.core import Cleanup, median
from bench.driver import Driver
from bench.workload import Workload
from tests.support import free_port

PASSES = 7


def measure(d: Driver, passes: int = PASSES, allow_pending: bool = False) -> dict[str, float]:
    d.reconciler.run_pass()  # the first pass after settling may still refresh caches
    walls, cpus, calls = [], [], []
    for _ in range(passes):
        count0, cpu0, t0 = d.counter.count, time.process_time(), time.perf_counter()
        d.reconciler.run_pass()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
        calls.append(d.counter.count - count0)
        outcome = d.reconciler.last_outcome
        idle = d.settled() or (
            allow_pending and outcome is not None and not outcome.engine.busy
        )
        if not idle:
            raise RuntimeError(f"an idle pass found work to do: {d.describe()}")
    return {
        "wall_ms": median(walls) * 1e3,
        "cpu_ms": median(cpus) * 1e3,
        "docker_api_calls": median(calls),
    }


def run(cleanup: Cleanup, sizes: list[int]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        first = sizes[0]
        root = Workload(replicas=first, port=free_port()).write(Path(tmp))
        d = Driver(cleanup, root, "idle")
        try:
            current = first
            for n in sizes:
                if n != current:
                    d.edit("serve_config.yaml", f"num_replicas: {current}", f"num_replicas: {n}")
                    current = n
                d.converge()
                result[str(n)] = measure(d)
        finally:
            cleanup.remove_owner(d.owner)
    return result
