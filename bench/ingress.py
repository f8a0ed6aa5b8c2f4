"""Section `ingress`: one replica behind the HAProxy ingress against the same replica called on
its own published port; the same wrk (8 connections), alternating, in one run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench import wrk
from bench.core import Cleanup, median
from bench.driver import Driver
from bench.workload import Workload
from tests.support import free_port


def run(cleanup: Cleanup, repeats: int, duration_s: float = 5.0) -> dict[str, Any]:
    via, direct = [], []
    with tempfile.TemporaryDirectory(prefix="bench-ingress-") as tmp:
        port = free_port()
        d = Driver(cleanup, Workload(replicas=1, port=port).write(Path(tmp)), "ingr")
        try:
            d.converge()
            (replica,) = d.engine.observe()
            assert replica.control_url is not None
            for _ in range(repeats):
                via.append(wrk.run(f"http://127.0.0.1:{port}/", duration_s))
                direct.append(wrk.run(replica.control_url + "/", duration_s))
        finally:
            cleanup.remove_owner(d.owner)
    out: dict[str, Any] = {}
    for name, runs in (("ingress", via), ("direct", direct)):
        out[f"{name}_rps"] = median([r.rps for r in runs])
        out[f"{name}_p50_ms"] = median([r.p50_ms for r in runs])
        out[f"{name}_p99_ms"] = median([r.p99_ms for r in runs])
        out[f"{name}_errors"] = sum(r.errors for r in runs)
    out["rps_ratio_ingress_vs_direct"] = out["ingress_rps"] / out["direct_rps"]
    out["p99_ratio_ingress_vs_direct"] = out["ingress_p99_ms"] / out["direct_p99_ms"]
    out["runs"] = repeats
    return out
