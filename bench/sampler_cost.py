"""`python -m bench.sampler_cost [SECONDS]`: what the autoscaler's sampling costs. The load
sampler reads the ingress's backends every 0.5 s through its published admin port, with 100
servers in the backend (10 replicas, 90 more servers added through the runtime API), for 30 s:
the CPU of this process, of the ingress's HAProxy and of the docker-proxy processes. Then one
`docker exec` (runc exec of `true`, the other way to reach a unix admin socket inside the
container) against one read of the loads over TCP."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker

from bench.core import Cleanup
from bench.driver import Driver
from bench.workload import Workload
from reconciler.runtime.load_sampler import LoadSampler, read_loads
from tests.support import free_port

HZ = os.sysconf("SC_CLK_TCK")


def _ticks(pids: list[str]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def _named(name: str) -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                out.append(pid)
        except OSError:
            continue
    return out


def _children(pid: int) -> list[str]:
    return [
        p for p in _named("haproxy") if Path(f"/proc/{p}/stat").read_text().split()[3] == str(pid)
    ]


def main(argv: list[str]) -> int:
    seconds = float(argv[0]) if argv else 30.0
    cleanup = Cleanup(docker.from_env())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            d = Driver(cleanup, Workload(replicas=10, port=free_port()).write(Path(tmp)), "samp")
            d.converge()
            admin = d.engine.ingress_admin
            assert admin is not None
            states = admin.show_servers_state()
            backend, ip = states[0].backend, states[0].address
            for i in range(100 - len(states)):
                admin.add_server(backend, f"extra{i}", ip, 8000, ["maxconn", "5"])
                admin.enable_server(backend, f"extra{i}")
            servers = len(admin.show_servers_state())
            root = int(d.engine._api().inspect_container(d.engine.ingress_name)["State"]["Pid"])
            haproxy, proxies = [str(root), *_children(root)], _named("docker-proxy")
            seen: list[dict[str, float]] = []
            sampler = LoadSampler(
                lambda: read_loads(admin), lambda t, loads: seen.append(loads), 0.5
            )
            own, h0, p0, t0 = (
                time.process_time(),
                _ticks(haproxy),
                _ticks(proxies),
                time.monotonic(),
            )
            sampler.start()
            threading.Event().wait(seconds)
            sampler.close()
            dt = time.monotonic() - t0
            own_pct = 100 * (time.process_time() - own) / dt
            h_pct = 100 * (_ticks(haproxy) - h0) / HZ / dt
            p_pct = 100 * (_ticks(proxies) - p0) / HZ / dt
            print(
                f"{servers} servers, {len(seen)} samples in {dt:.1f}s: this process "
                f"{own_pct:.2f}% of a core, HAProxy {h_pct:.2f}%, docker-proxy {p_pct:.2f}%"
            )
            t = time.monotonic()
            for _ in range(100):
                read_loads(admin)
            print(f"read_loads over TCP: {10 * (time.monotonic() - t):.2f} ms wall each")
            t = time.monotonic()
            for _ in range(10):
                subprocess.run(
                    ["docker", "exec", d.engine.ingress_name, "true"],
                    check=True,
                    capture_output=True,
                )
            print(f"docker exec true: {100 * (time.monotonic() - t):.0f} ms wall each")
    finally:
        cleanup.sweep()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
