"""Section `admission`: what the host-capacity rule costs and saves.

- `flood`: 10 replicas of one deployment run; a commit adds a second deployment asking for
  100,000 replicas at Serve's default num_cpus (1). Measured: the instance's container count
  once it has settled (must stay under the replica cap and the CPU room), and the pass time of
  the running deployment with 99,99x replicas pending against an idle pass (wall and CPU), in
  one run.
- `quota`: one replica at `num_cpus: 0.05` through the ingress, started as Ray treats num_cpus
  (a CPU weight, the default) and as a hard CPU quota (`--hard-limits`, NanoCpus = 0.05 core,
  what the reconciler did before), the same wrk, alternating.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench import wrk
from bench.core import Cleanup, median
from bench.driver import Driver
from bench.idle import measure
from bench.workload import Workload
from reconciler.runtime.docker_engine import DockerEngine
from reconciler.settings import HostLimits
from tests.support import free_port

FLOOD = 100_000
_SECOND = """
  - name: Flood
    num_replicas: {n}
"""
_FLOOD_CODE = """

@serve.deployment
class Flood:
    def __call__(self, request):
        return "flood"


flood_app = Flood.bind()
"""


def flood(cleanup: Cleanup, passes: int = 7) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-flood-") as tmp:
        root = Workload(replicas=10, port=free_port()).write(Path(tmp))
        d = Driver(cleanup, root, "flood")
        try:
            d.converge()
            idle = measure(d, passes)
            capacity = d.engine.capacity()
            _add_flood(root)
            d.converge_or_settle()
            t0 = time.perf_counter()
            flooded = measure(d, passes, allow_pending=True)
            measured_s = time.perf_counter() - t0
            owned = d.engine.observe()
            snap = d.reconciler.snapshot
        finally:
            cleanup.remove_owner(d.owner)
    return {
        "asked": FLOOD,
        "containers": len(owned),
        "replica_cap": capacity.max_replicas,
        "logical_cpus": capacity.cpus,
        "pending": snap.pending_replicas,
        "idle_pass_wall_ms": idle["wall_ms"],
        "idle_pass_cpu_ms": idle["cpu_ms"],
        "flooded_pass_wall_ms": flooded["wall_ms"],
        "flooded_pass_cpu_ms": flooded["cpu_ms"],
        "wall_ratio": flooded["wall_ms"] / idle["wall_ms"],
        "cpu_ratio": flooded["cpu_ms"] / idle["cpu_ms"],
        "docker_api_calls": flooded["docker_api_calls"],
        "measured_s": measured_s,
    }


def _add_flood(root: Path) -> None:
    """A second application asking for FLOOD replicas at Serve's default num_cpus."""
    code = root / "bench_app.py"
    code.write_text(code.read_text() + _FLOOD_CODE)
    config = root / "serve_config.yaml"
    text = config.read_text()
    head, _, deployments = text.partition("deployments:\n")
    lines = [line for line in head.splitlines() if not line.startswith(("host:", "port:"))]
    port = next(line for line in head.splitlines() if line.startswith("port:")).split()[1]
    multi = (
        f"http_options:\n  host: 127.0.0.1\n  port: {port}\napplications:\n"
        f"  - name: bench\n    route_prefix: /\n    {lines[0]}\n    deployments:\n"
        + "".join(f"    {line}\n" for line in deployments.splitlines())
        + "  - name: flood\n    route_prefix: /flood\n    import_path: bench_app:flood_app\n"
        "    deployments:"
        + "".join(f"\n    {line}" for line in _SECOND.format(n=FLOOD).strip("\n").splitlines())
        + "\n"
    )
    config.write_text(multi)


def quota(cleanup: Cleanup, repeats: int, duration_s: float) -> dict[str, Any]:
    runs: dict[str, list[wrk.WrkResult]] = {"weight": [], "quota": []}
    drivers: dict[str, Driver] = {}
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        try:
            ports = {}
            for mode in runs:
                port = free_port()
                root = Workload(replicas=1, port=port).write(Path(tmp) / mode)
                config = root / "serve_config.yaml"
                config.write_text(config.read_text().replace("num_cpus: 0.02", "num_cpus: 0.05"))
                d = Driver(cleanup, root, f"quota{mode[0]}")
                hard = HostLimits(hard_limits=mode == "quota")
                d.engine = DockerEngine(
                    instance=d.owner, default_image=d.engine._default_image, limits=hard
                )
                d.rebuild()
                d.converge()
                drivers[mode], ports[mode] = d, port
            for _ in range(repeats):
                for mode, port in ports.items():
                    runs[mode].append(wrk.run(f"http://127.0.0.1:{port}/", duration_s))
        finally:
            for d in drivers.values():
                cleanup.remove_owner(d.owner)
    out: dict[str, Any] = {"num_cpus": 0.05, "runs": repeats}
    for mode, results in runs.items():
        out[f"{mode}_rps"] = median([r.rps for r in results])
        out[f"{mode}_p50_ms"] = median([r.p50_ms for r in results])
        out[f"{mode}_p99_ms"] = median([r.p99_ms for r in results])
        out[f"{mode}_errors"] = sum(r.errors for r in results)
    out["rps_ratio_weight_vs_quota"] = out["weight_rps"] / out["quota_rps"]
    return out


def run(cleanup: Cleanup, repeats: int, duration_s: float) -> dict[str, Any]:
    return {"flood": flood(cleanup), "quota": quota(cleanup, repeats, duration_s)}
