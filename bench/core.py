"""Shared bench machinery: owner names and cleanup, the one readiness criterion, counting Docker
API requests, medians and timers.

Everything a section creates carries `io.serve-reconciler.owner=<name>` (names start with
`bench`), so one sweep removes it, also after Ctrl-C or a failure (`Cleanup`).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import docker

from reconciler.runtime import labels
from tests.support import wait_for as wait_until  # the one poll-with-deadline helper

T = TypeVar("T")
BENCH_LABEL = f"{labels.PREFIX}.bench"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


class ApiCounter:
    """Counts the HTTP requests a docker client sends (a requests response hook on its session)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.count += 1
        return response

    def attach(self, client: docker.DockerClient) -> docker.DockerClient:
        client.api.hooks["response"].append(self)
        return client


def counted_client() -> tuple[docker.DockerClient, ApiCounter]:
    counter = ApiCounter()
    return counter.attach(docker.from_env()), counter


# --- the readiness criterion, the same for the reconciler and both baselines -----------------


def _published_port(entry: dict[str, Any]) -> int | None:
    for port in entry.get("Ports") or []:
        if port.get("PrivatePort") == 8000 and port.get("PublicPort"):
            return int(port["PublicPort"])
    return None


def answers_ready(port: int, timeout: float = 1.0, host: str = "127.0.0.1") -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/-/ready")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class ReadyWatch:
    """Counts containers with `label_filters` whose published port 8000 answers GET /-/ready 200.
    The same poller times all three contenders, so the criterion and its cost are equal."""

    def __init__(self, client: docker.DockerClient, label_filters: list[str]) -> None:
        self._api = client.api
        self._filters = {"label": label_filters, "status": "running"}
        self._ready: set[str] = set()

    def count(self) -> int:
        for entry in self._api.containers(filters=self._filters):
            if entry["Id"] in self._ready:
                continue
            port = _published_port(entry)
            if port is not None and answers_ready(port):
                self._ready.add(entry["Id"])
        return len(self._ready)

    def wait(self, n: int, timeout: float) -> None:
        wait_until(lambda: self.count() >= n, timeout=timeout, interval=0.05, what=f"{n} ready")


def replica_filters(owner: str) -> list[str]:
    return [f"{labels.OWNER}={owner}", f"{labels.ROLE}=replica"]


# --- cleanup --------------------------------------------------------------------------------


@dataclass
class Cleanup:
    """Owners and processes a run created; `sweep()` removes them. Installed as the SIGTERM
    handler's target too, so a killed bench leaves nothing behind."""

    client: docker.DockerClient
    owners: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    compose_dirs: list[tuple[str, str]] = field(default_factory=list)  # (project, directory)

    def owner(self, section: str) -> str:
        name = f"bench{section[:6]}{uuid.uuid4().hex[:6]}"
        self.owners.append(name)
        return name

    def process(self, proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        self.processes.append(proc)
        return proc

    def remove_owner(self, owner: str, deadline_s: float = 30.0) -> None:
        """Remove the owner's containers, then its networks. Repeats until none is left: a
        network refuses removal while endpoints detach, and a daemon killed mid-`create` can
        leave a container that appears a moment later. Says what is left after `deadline_s`."""
        api = self.client.api
        label = {"label": f"{labels.OWNER}={owner}"}
        deadline = time.monotonic() + deadline_s
        while True:
            ids = [c["Id"] for c in api.containers(all=True, filters=label)]
            parallel(lambda cid: _quietly(lambda: api.remove_container(cid, force=True)), ids)
            nets = [n["Id"] for n in api.networks(filters=label)]
            for net_id in nets:
                _quietly(functools.partial(api.remove_network, net_id))
            if not ids and not nets:
                return
            if time.monotonic() > deadline:
                print(
                    f"[bench] could not remove {len(ids)} container(s) and {len(nets)} "
                    f"network(s) labelled {labels.OWNER}={owner}; remove them by hand",
                    file=sys.stderr,
                )
                return
            threading.Event().wait(0.2)

    def sweep(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        for owner in self.owners:
            self.remove_owner(owner)
            remove_images(self.client, owner)


def remove_images(client: docker.DockerClient, owner: str) -> None:
    """The images the reconciler built for `owner` (with their intermediate layers)."""
    from reconciler.runtime.docker_engine import DockerEngine

    engine = DockerEngine(instance=owner, default_image="unused", docker_client=client)
    try:
        _quietly(engine.remove_images)
    finally:
        engine.close()


def _quietly(fn: Callable[[], Any]) -> None:
    with contextlib.suppress(docker.errors.APIError, docker.errors.NotFound):
        fn()


def parallel(fn: Callable[[T], Any], items: Sequence[T], workers: int = 16) -> list[Any]:
    from concurrent.futures import ThreadPoolExecutor

    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt, so `finally` blocks clean up as they do on Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0
