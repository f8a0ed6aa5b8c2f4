"""The reconcile pass in-process, driven the way `reconciler up` drives it (pass, wait the delay
the pass asks for, repeat), over a work tree the bench edits; its docker client counts requests."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from bench.core import ApiCounter, Cleanup, counted_client, wait_until
from bench.workload import IMAGE
from reconciler import spec
from reconciler.model import ApplicationStatus
from reconciler.reconcile import Reconciler, WorkTreeTarget
from reconciler.runtime.docker_engine import DockerEngine


class Driver:
    def __init__(
        self, cleanup: Cleanup, root: Path, section: str, ingress_network: str = "host"
    ) -> None:
        self.root = root
        self.owner = cleanup.owner(section)
        client, self.api_calls = counted_client()
        self.engine = DockerEngine(
            instance=self.owner,
            default_image=IMAGE,
            docker_client=client,
            ingress_network=ingress_network,
        )
        self.reconciler = self._reconciler()
        self.passes = 0

    def _reconciler(self) -> Reconciler:
        target = WorkTreeTarget(
            root=self.root, config_path="serve_config.yaml", load=spec.load_config
        )
        return Reconciler(
            target=target, engine=self.engine, redact=spec.redacted_document, interval_s=1.0
        )

    def rebuild(self) -> None:
        """A new reconciler over `self.engine` (after a section swapped the engine)."""
        self.reconciler = self._reconciler()

    @property
    def counter(self) -> ApiCounter:
        return self.api_calls

    def settled(self) -> bool:
        snap = self.reconciler.snapshot
        return (
            self.reconciler.last_settled
            and bool(snap.applications)
            and all(a.status == ApplicationStatus.RUNNING for a in snap.applications)
        )

    def converge(self, timeout: float = 300.0) -> float:
        """Passes until settled and RUNNING; the seconds it took (`up`'s loop: no extra waits)."""
        t0 = time.monotonic()
        pause = threading.Event()
        deadline = t0 + timeout
        while True:
            delay = self.reconciler.run_pass()
            self.passes += 1
            if self.settled():
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                raise TimeoutError(f"not converged after {timeout:.0f}s: {self.describe()}")
            pause.wait(delay if delay is not None else 1.0)

    def converge_or_settle(self, timeout: float = 300.0) -> float:
        """Passes until nothing is in flight: settled, or only replicas waiting for room."""
        t0 = time.monotonic()
        pause = threading.Event()
        while True:
            delay = self.reconciler.run_pass()
            outcome = self.reconciler.last_outcome
            engine = outcome.engine if outcome is not None else None
            if engine and engine.reached and not engine.busy and (engine.settled or engine.pending):
                return time.monotonic() - t0
            if time.monotonic() > t0 + timeout:
                raise TimeoutError(f"still busy after {timeout:.0f}s: {self.describe()}")
            pause.wait(min(delay if delay is not None else 1.0, 0.5))

    def describe(self) -> str:
        snap = self.reconciler.snapshot
        parts = [
            f"{a.name} {a.status.value}: "
            + ", ".join(f"{d.name} {d.status.value} {d.message}" for d in a.deployments)
            for a in snap.applications
        ]
        return "; ".join(parts) + (
            f" engine_error={snap.loop.engine_error}" if snap.loop.engine_error else ""
        )

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.root / relpath
        text = path.read_text()
        if old not in text:
            raise ValueError(f"{old!r} not in {relpath}")
        path.write_text(text.replace(old, new, 1))

    def containers(self) -> dict[str, tuple[str, str]]:
        """replica name -> (container id, State.StartedAt), for every live replica."""
        api = self.engine._api()
        out: dict[str, tuple[str, str]] = {}
        for r in self.engine.observe():
            if r.drain_deadline is None:
                info: dict[str, Any] = api.inspect_container(r.container_id)
                out[r.name] = (r.container_id, str(info["State"]["StartedAt"]))
        return out

    def wait_gone(self, count: int, timeout: float = 60.0) -> None:
        wait_until(lambda: len(self.engine.observe()) == count, timeout=timeout, what="drained")


def restarted(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> int:
    """How many of the replicas in `before` that should have survived did not: a different
    container id or a different StartedAt under the same name, or gone."""
    return sum(1 for name, ident in before.items() if after.get(name) != ident)
