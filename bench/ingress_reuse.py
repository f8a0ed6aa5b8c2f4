"""`python -m bench.ingress_reuse [ROUNDS] [SECONDS]`: HAProxy's `http-reuse` modes (and the old
`option http-server-close`) on the ingress, one replica, against the replica called directly,
for kept-alive clients and for clients opening a connection per request; rounds interleaved,
medians as ratios to direct. The figures behind routing.HTTP_REUSE (bench/RESULTS.md)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import docker

from bench import wrk
from bench.core import Cleanup, median
from bench.driver import Driver
from bench.workload import Workload
from reconciler import routing
from tests.support import free_port

MODES = ("server-close", "never", "safe", "aggressive", "always")
CLIENTS = {"keep-alive": (), "close": ("Connection: close",)}


def _use(mode: str) -> None:
    """Render the ingress with `mode` from now on (the driver renders in this process)."""
    if mode == "server-close":
        routing.HTTP_REUSE = "never\n    option http-server-close"
    else:
        routing.HTTP_REUSE = mode


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv else 3
    seconds = float(argv[1]) if len(argv) > 1 else 3.0
    cleanup = Cleanup(docker.from_env())
    runs: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-reuse-") as tmp:
            port = free_port()
            d = Driver(cleanup, Workload(replicas=1, port=port).write(Path(tmp)), "reuse")
            d.converge()
            (replica,) = d.engine.observe()
            assert replica.control_url is not None
            for _ in range(rounds):
                for mode in MODES:
                    _use(mode)
                    d.converge()  # the next pass renders the mode: a reload
                    for client, headers in CLIENTS.items():
                        via = wrk.run(f"http://127.0.0.1:{port}/", seconds, headers=headers)
                        direct = wrk.run(replica.control_url + "/", seconds, headers=headers)
                        runs.setdefault(f"{mode} {client} rps", []).append(via.rps / direct.rps)
                        runs.setdefault(f"{mode} {client} p99", []).append(
                            via.p99_ms / direct.p99_ms
                        )
    finally:
        cleanup.sweep()
    report: dict[str, Any] = {k: round(median(v), 2) for k, v in runs.items()}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
