"""`bench/run [--quick] [--only SECTION...] [--out FILE]`: run the sections, print one table,
write the figures (and the machine they came from) as JSON."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from bench import (
    admission,
    autoscale,
    converge,
    dashboard,
    idle,
    ingress,
    lifecycle,
    memory,
    push,
    status_api,
    swarm,
)
from bench.core import Cleanup, sigterm_as_interrupt
from bench.table import render

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Sizes:
    converge: list[int]
    converge_repeats: int
    scale_repeats: int
    rolling_repeats: int
    push_repeats: int
    idle: list[int]
    memory: int
    wrk_repeats: int
    wrk_s: float  # seconds per wrk run (idle /status, ingress, direct)
    swarm: int = 30  # replicas over the 3-node swarm lab
    swarm_repeats: int = 3


FULL = Sizes(
    converge=[10, 30, 100], converge_repeats=3, scale_repeats=3, rolling_repeats=3,
    push_repeats=5, idle=[10, 30, 50, 100], memory=100, wrk_repeats=3, wrk_s=5.0,
)  # fmt: skip
QUICK = Sizes(
    converge=[10, 30], converge_repeats=2, scale_repeats=2, rolling_repeats=1, push_repeats=3,
    idle=[10, 30], memory=30, wrk_repeats=1, wrk_s=3.0, swarm_repeats=1,
)  # fmt: skip
SMALLEST = Sizes(
    converge=[2], converge_repeats=1, scale_repeats=1, rolling_repeats=1, push_repeats=1,
    idle=[2], memory=2, wrk_repeats=1, wrk_s=1.0, swarm=3, swarm_repeats=1,
)  # fmt: skip

Section = Callable[[Cleanup, Sizes, Path], dict[str, Any]]  # (cleanup, sizes, the JSON's path)
SECTIONS: dict[str, Section] = {
    "converge": lambda c, s, o: converge.run(c, s.converge, s.converge_repeats),
    "scale": lambda c, s, o: lifecycle.scale(c, s.scale_repeats),
    "rolling": lambda c, s, o: lifecycle.rolling(c, s.rolling_repeats),
    "push": lambda c, s, o: push.run(c, s.push_repeats),
    "idle-pass": lambda c, s, o: idle.run(c, s.idle),
    "memory": lambda c, s, o: memory.run(c, s.memory),
    "status-api": lambda c, s, o: status_api.run(c, s.wrk_repeats, idle_s=s.wrk_s),
    "dashboard": lambda c, s, o: dashboard.run(c, s.wrk_repeats, idle_s=s.wrk_s),
    "ingress": lambda c, s, o: ingress.run(c, max(2, s.wrk_repeats), duration_s=s.wrk_s),
    "admission": lambda c, s, o: admission.run(c, max(2, s.wrk_repeats), duration_s=s.wrk_s),
    "autoscale": lambda c, s, o: autoscale.run(
        c, o.with_name(f"{o.stem}-autoscale.png"), quick=s.wrk_repeats < 3
    ),
    "swarm": lambda c, s, o: swarm.run(c, s.swarm, s.swarm_repeats),
}


OPT_IN = {"swarm"}  # needs root and builds a 3-node lab: run it by name (--only swarm)


def machine() -> dict[str, Any]:
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    docker_version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "docker": docker_version,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats (< 5 min)")
    p.add_argument("--smallest", action="store_true", help="the smallest sizes (smoke test)")
    p.add_argument("--only", nargs="+", choices=list(SECTIONS), metavar="SECTION",
                   help=f"run only these sections: {', '.join(SECTIONS)}")  # fmt: skip
    p.add_argument("--out", type=Path, help="JSON file (default: bench/results/<time>.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.ERROR)  # the reconciler's own warnings would drown the table
    sizes = SMALLEST if args.smallest else QUICK if args.quick else FULL
    mode = "smallest" if args.smallest else "quick" if args.quick else "full"
    names = args.only or [s for s in SECTIONS if s not in OPT_IN]
    report: dict[str, Any] = {
        "mode": mode,
        "command": "bench/run " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sections": {},
        "section_seconds": {},
    }
    out = args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{mode}.json"
    cleanup = Cleanup(docker.from_env())
    t_all = time.monotonic()
    try:
        with sigterm_as_interrupt():
            for name in names:
                print(f"[bench] {name} ...", file=sys.stderr, flush=True)
                t0 = time.monotonic()
                report["sections"][name] = SECTIONS[name](cleanup, sizes, out)
                report["section_seconds"][name] = round(time.monotonic() - t0, 1)
    finally:
        cleanup.sweep()
        report["owners"] = cleanup.owners  # label values of everything created (all removed)
        report["total_seconds"] = round(time.monotonic() - t_all, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
