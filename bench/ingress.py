"""Section `ingress`: replicas behind the HAProxy ingress against the same replicas called on
their own published ports, the same wrk, alternating, in one run:

- one replica, wrk -c8 on kept-alive connections, and again with a new connection per request
  (`Connection: close`: what HAProxy's `http-reuse` decides for the replica side);
- eight replicas: eight wrk (-t1 -c8) at once through the ingress, against one wrk on each
  replica's own port at once (the sum of 8 direct): the ingress must scale, not cap;
- the same one replica at its address on the instance's network, from the host (no
  docker-proxy in that path either): what HAProxy itself costs;
- one replica again behind an ingress on the instance's bridge network (`--ingress-network
  bridge`: Docker publishes its port, so docker-proxy sits between wrk and HAProxy), kept alive.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench import wrk
from bench.core import Cleanup, median
from bench.driver import Driver
from bench.workload import Workload
from tests.support import free_port

CLOSE = ("Connection: close",)


def run(cleanup: Cleanup, repeats: int, duration_s: float = 5.0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingress-") as tmp:
        port = free_port()
        d = Driver(cleanup, Workload(replicas=1, port=port).write(Path(tmp)), "ingr")
        try:
            d.converge()
            (replica,) = d.engine.observe()
            assert replica.control_url is not None
            via_url, direct_url = f"http://127.0.0.1:{port}/", replica.control_url + "/"
            out.update(_pair(via_url, direct_url, repeats, duration_s, ()))
            # The replica at its address on the instance's network (no docker-proxy either):
            # what HAProxy itself costs, now that neither path has the userland proxy.
            inside_url = f"http://{replica.network_ip}:8000/"
            out.update(_pair(via_url, inside_url, repeats, duration_s, (), "inside_"))
            out.update(_pair(via_url, direct_url, repeats, duration_s, CLOSE, "close_"))
            d.edit("serve_config.yaml", "num_replicas: 1", "num_replicas: 8")
            d.converge()
            out.update(_eight(d, via_url, repeats, duration_s))
            out["reloads"] = getattr(d.engine, "ingress_reloads", None)  # None: an older engine
        finally:
            cleanup.remove_owner(d.owner)
        out.update(_bridged(cleanup, Path(tmp) / "bridge", repeats, duration_s))
    out["runs"] = repeats
    return out


def _bridged(cleanup: Cleanup, root: Path, repeats: int, duration_s: float) -> dict[str, Any]:
    root.mkdir()
    port = free_port()
    d = Driver(cleanup, Workload(replicas=1, port=port).write(root), "ingb", "bridge")
    try:
        d.converge()
        (replica,) = d.engine.observe()
        assert replica.control_url is not None
        via_url, direct_url = f"http://127.0.0.1:{port}/", replica.control_url + "/"
        return _pair(via_url, direct_url, repeats, duration_s, (), "bridge_")
    finally:
        cleanup.remove_owner(d.owner)


def _pair(
    via_url: str,
    direct_url: str,
    repeats: int,
    duration_s: float,
    headers: tuple[str, ...],
    prefix: str = "",
) -> dict[str, Any]:
    via, direct = [], []
    for _ in range(repeats):
        via.append(wrk.run(via_url, duration_s, headers=headers))
        direct.append(wrk.run(direct_url, duration_s, headers=headers))
    out: dict[str, Any] = {}
    for name, runs in (("ingress", via), ("direct", direct)):
        out[f"{prefix}{name}_rps"] = median([r.rps for r in runs])
        out[f"{prefix}{name}_p50_ms"] = median([r.p50_ms for r in runs])
        out[f"{prefix}{name}_p99_ms"] = median([r.p99_ms for r in runs])
        out[f"{prefix}{name}_errors"] = sum(r.errors for r in runs)
    out[f"{prefix}rps_ratio_ingress_vs_direct"] = (
        out[f"{prefix}ingress_rps"] / out[f"{prefix}direct_rps"]
    )
    out[f"{prefix}p99_ratio_ingress_vs_direct"] = (
        out[f"{prefix}ingress_p99_ms"] / out[f"{prefix}direct_p99_ms"]
    )
    return out


def _eight(d: Driver, via_url: str, repeats: int, duration_s: float) -> dict[str, Any]:
    urls = [r.control_url + "/" for r in d.engine.observe() if r.control_url]
    assert len(urls) == 8, urls
    via, direct, errors = [], [], 0
    for _ in range(repeats):
        through = wrk.run_many([via_url] * 8, duration_s)
        alone = wrk.run_many(urls, duration_s)
        via.append(sum(r.rps for r in through))
        direct.append(sum(r.rps for r in alone))
        errors += sum(r.errors for r in (*through, *alone))
    return {
        "eight_ingress_rps": median(via),
        "eight_direct_sum_rps": median(direct),
        "eight_rps_ratio": median(via) / median(direct),
        "eight_errors": errors,
    }
