"""`reconciler up` and `down`: a working tree applied by a reconciler of its own (no git, no
API), and an instance removed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler import spec
from reconciler.app.engine import (
    ImageKeeper,
    autoscale_with,
    make_engine,
    make_fetcher,
    make_loader,
)
from reconciler.model import ServeConfig, Snapshot
from reconciler.ports import Engine
from reconciler.reconcile import Reconciler, WorkTreeTarget
from reconciler.reconcile.converge import Verdict, converge, verdict_of
from reconciler.reconcile.jobs import Progress
from reconciler.settings import EngineSettings

UP_INTERVAL_S = 1.0


@dataclass
class Up:
    """`reconciler up`: a working tree applied by a reconciler of its own, no git, no API."""

    engine: Engine
    reconciler: Reconciler
    wake: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        autoscale_with(self.engine, self.reconciler, self.wake.set)

    def until_verdict(self, on_pass: Callable[[Snapshot], None], timeout_s: float) -> Verdict:
        return converge(
            self.reconciler, timeout_s=timeout_s, interval_s=UP_INTERVAL_S, on_pass=on_pass
        )

    def follow(self, on_pass: Callable[[Snapshot], None], stop: threading.Event) -> Verdict | None:
        """Apply edits as they are saved until `stop`. A config that is invalid (or that the
        host cannot hold) before anything of it ran ends it at once, as `serve run` does; later,
        the last good one keeps running while the error is shown."""
        while not stop.is_set():
            delay = self.reconciler.run_pass()
            on_pass(self.reconciler.snapshot)
            verdict = verdict_of(self.reconciler)
            if verdict in (Verdict.INVALID, Verdict.UNHOLDABLE) and not self._seen_running():
                return verdict
            self._pause(stop, delay if delay is not None else UP_INTERVAL_S)
        return None

    def _pause(self, stop: threading.Event, seconds: float) -> None:
        """Until the next pass: `seconds`, less when stopped or the autoscaler moved a target."""
        deadline = time.monotonic() + seconds
        while not (stop.is_set() or self.wake.is_set()) and time.monotonic() < deadline:
            stop.wait(min(0.1, max(0.0, deadline - time.monotonic())))
        self.wake.clear()

    def _seen_running(self) -> bool:
        return self.reconciler.snapshot.commits.applied is not None

    def remove(self) -> None:
        self.engine.remove_all()


def build_up(root: Path, config_path: str, engine_settings: EngineSettings) -> Up:
    engine = make_engine(engine_settings)
    engine.ping()
    keeper = ImageKeeper(engine, engine_settings.images.keep_images)
    build = keeper.preparer()

    def prepare(config: ServeConfig, progress: Progress) -> ServeConfig:
        prepared = build(config, progress)
        keeper.applied("worktree")  # up applies what it prepared at once
        return prepared

    load = make_loader(engine_settings, make_fetcher(engine_settings), engine)
    target = WorkTreeTarget(root=root, config_path=config_path, load=load, prepare=prepare)
    reconciler = Reconciler(
        target=target, engine=engine, redact=spec.redacted_document, interval_s=UP_INTERVAL_S
    )
    return Up(engine, reconciler)


def run_down(engine_settings: EngineSettings) -> None:
    """Remove every container, network and image an instance owns (after `up --detach`)."""
    engine = make_engine(engine_settings)
    engine.remove_all()
    engine.remove_images()
