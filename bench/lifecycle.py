"""Sections `scale` and `rolling`: the in-place changes Serve promises, timed in-process.

scale: 10 -> 30 (the 10 keep running), a user_config change across the 30 (no restart), 30 -> 10
(the original 10 remain). Restarts are counted from Docker: same name with another container id
or another State.StartedAt. rolling: a code change across 30 replicas behind the ingress, with a
steady load of new-connection requests through it; every non-200 answer counts as failed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.core import Cleanup, median
from bench.driver import Driver, restarted
from bench.workload import Workload
from tests.e2e.load import SteadyLoad
from tests.support import free_port


def scale(cleanup: Cleanup, repeats: int, low: int = 10, high: int = 30) -> dict[str, Any]:
    up, down, reconf, restarts = [], [], [], 0
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Workload(replicas=low, port=free_port()).write(Path(tmp))
        d = Driver(cleanup, root, "scale")
        try:
            d.converge()
            originals = d.containers()
            for i in range(repeats):
                d.edit("serve_config.yaml", f"num_replicas: {low}", f"num_replicas: {high}")
                up.append(d.converge())
                grown = d.containers()
                restarts += restarted(originals, grown)
                d.edit("serve_config.yaml", f"greeting: g{i}" if i else "greeting: hello",
                       f"greeting: g{i + 1}")  # fmt: skip
                reconf.append(d.converge())
                restarts += restarted(grown, d.containers())
                d.edit("serve_config.yaml", f"num_replicas: {high}", f"num_replicas: {low}")
                down.append(d.converge())
                restarts += restarted(originals, d.containers())
        finally:
            cleanup.remove_owner(d.owner)
    return {
        "scale_up_s": median(up),
        "user_config_s": median(reconf),
        "scale_down_s": median(down),
        "restarted": restarts,
        "runs": repeats,
    }


def rolling(cleanup: Cleanup, repeats: int, replicas: int = 30) -> dict[str, Any]:
    times, failed, sent, replaced = [], 0, 0, []
    samples: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-rolling-") as tmp:
        port = free_port()
        root = Workload(replicas=replicas, port=port).write(Path(tmp))
        d = Driver(cleanup, root, "roll")
        try:
            d.converge()
            url = f"http://127.0.0.1:{port}/"
            for i in range(repeats):
                before = d.containers()
                d.edit("bench_app.py", f'VERSION = "v{i + 1}"', f'VERSION = "v{i + 2}"')
                with SteadyLoad(url, {}, rate=25.0, threads=2) as load:
                    times.append(d.converge())
                failed += load.sent - load.outcomes["200"]
                samples += load.failures[: 5 - len(samples)]
                sent += load.sent
                after = d.containers()
                replaced.append(sum(1 for n in before if after.get(n) != before[n]))
        finally:
            cleanup.remove_owner(d.owner)
    return {
        "replicas": replicas,
        "rollout_s": median(times),
        "requests": sent,
        "failed_requests": failed,
        "failures": samples,  # the first few, as SteadyLoad saw them
        "replaced": min(replaced) if replaced else 0,
        "runs": repeats,
    }
