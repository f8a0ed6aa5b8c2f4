"""Section `memory`: the resident memory (VmRSS) of a `reconciler run` daemon with N replicas
running, sampled a few times after it has deployed them and gone idle (median of the samples)."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from bench.core import Cleanup, median
from bench.daemon import running_daemon
from bench.workload import Workload
from tests.support import free_port

SAMPLES = 5


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def run(cleanup: Cleanup, replicas: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        workload = Workload(replicas=replicas, port=free_port())
        with running_daemon(cleanup, Path(tmp), workload, section="mem") as (daemon, _, _):
            assert daemon.proc is not None
            pause, samples = threading.Event(), []
            for _ in range(SAMPLES):
                pause.wait(1.0)  # a deliberate spacing: let idle passes run between samples
                samples.append(vm_rss_mib(daemon.proc.pid))
            passes = daemon.status()["passes"]
    return {"replicas": replicas, "rss_mib": median(samples), "max_rss_mib": max(samples),
            "passes_seen": passes}  # fmt: skip
