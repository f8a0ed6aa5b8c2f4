"""Images for the lab's nodes: a real registry (Debian's `docker-registry`, plain HTTP on the
bridge address, which the nodes trust as an insecure registry) and the `docker save | docker load`
copy from the host engine that seeds every node with the base image."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.swarm.plumbing import LabError, run


def free_port(host_ip: str) -> int:
    """5000 unless something already holds it there; then any free port."""
    for port in (5000, 0):
        with socket.socket() as s:
            try:
                s.bind((host_ip, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise LabError(f"no free port on {host_ip} for the registry")


def start(workdir: Path, addr: str, timeout: float = 20.0) -> int:
    """Start the registry at `addr` (host:port), storage and log under `workdir`, in a session
    of its own; return its pid once `/v2/` answers."""
    binary = shutil.which("docker-registry")
    if not binary:
        raise LabError("docker-registry not found: apt-get install -y docker-registry")
    workdir.mkdir()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {addr}\n"
    )
    with open(workdir / "registry.log", "ab") as out:
        proc = subprocess.Popen([binary, "serve", str(config)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True)
    (workdir / "registry.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{addr}/v2/", timeout=2):
                return proc.pid
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "registry.log").read_text(errors="replace")[-500:]
                raise LabError(f"the lab registry at {addr} did not answer: {tail}") from None
            time.sleep(0.2)


def load_image(docker_hosts: list[str], image: str, workdir: Path) -> float:
    """Copy a host-engine image onto every node: `docker save` once, then `docker load` on the
    nodes in parallel. Returns the seconds it took."""
    t0 = time.monotonic()
    tar = workdir / "image.tar"
    run(["docker", "save", "-o", str(tar), image], timeout=300)
    try:
        loads = [subprocess.Popen(["docker", "-H", h, "load", "-q", "-i", str(tar)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for h in docker_hosts]
        errors = [p.communicate(timeout=300)[1] for p in loads]
    finally:
        tar.unlink()
    bad = [f"{h}: {e.decode().strip()}"
           for h, p, e in zip(docker_hosts, loads, errors, strict=True) if p.returncode]
    if bad:
        raise LabError("docker load failed on " + "; ".join(bad))
    return time.monotonic() - t0
