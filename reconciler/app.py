"""The composition root: the one place that builds concrete classes and wires them together, for
the daemon (`reconciler run`: state store, git target, engine, reconciler, metrics, scheduler and
HTTP API) and for `reconciler up` / `down`. Nothing here decides anything about replicas; the
command line (cli/) parses flags into `settings` and maps verdicts to exit codes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler import spec
from reconciler.api import ApiServer, create_app
from reconciler.metrics import Metrics
from reconciler.model import ServeConfig, Snapshot
from reconciler.reconcile import GitTarget, Reconciler, WorkTreeTarget
from reconciler.reconcile.converge import Verdict, converge, verdict_of
from reconciler.runtime.docker_engine import DockerEngine
from reconciler.runtime.sandbox import SandboxGraphBuilder
from reconciler.scheduler import PassScheduler
from reconciler.settings import AUTOSCALE_TICK_S, DaemonSettings, EngineSettings
from reconciler.source import GitSource, scrub
from reconciler.state import StateStore

log = logging.getLogger(__name__)

UP_INTERVAL_S = 1.0


def make_engine(settings: EngineSettings) -> DockerEngine:
    return DockerEngine(
        instance=settings.instance,
        default_image=settings.default_image,
        publish_host=settings.publish_host,
        image_allowlist=settings.allowed_images,
        limits=settings.limits,
    )


def make_loader(settings: EngineSettings) -> Callable[[Path, str], ServeConfig]:
    """The config loader of `run` and `up`: from_env values from this process's environment,
    and code that reading cannot decide built in a sandbox on the same engine."""
    sandbox = SandboxGraphBuilder(
        instance=settings.instance,
        default_image=settings.default_image,
        image_allowlist=settings.allowed_images,
    )

    def load(tree: Path, config_path: str) -> ServeConfig:
        return spec.load_config(
            tree,
            config_path,
            environ=os.environ,
            graph_builder=sandbox,
            default_image=settings.default_image,
        )

    return load


@dataclass
class Daemon:
    """A built daemon: `serve` runs it until `stop` is set, `once` until a verdict."""

    settings: DaemonSettings
    store: StateStore
    engine: DockerEngine
    target: GitTarget
    reconciler: Reconciler
    metrics: Metrics
    scheduler: PassScheduler

    def once(self, timeout_s: float) -> Verdict:
        return converge(
            self.reconciler, timeout_s=timeout_s, interval_s=self.settings.poll_interval_s
        )

    def serve(self, stop: threading.Event) -> None:
        """Serve the API and run passes until `stop` is set. Raises OSError when the API's
        address cannot be bound (before anything else starts)."""
        s = self.settings
        app = create_app(
            snapshot=lambda: self.reconciler.snapshot,
            history=self.store.history,
            trigger=self.scheduler.trigger,
            health=self.scheduler.health,
            metrics=self.metrics,
            branch=s.branch,
            webhook_secret=s.webhook_secret,
        )
        server = ApiServer(app, s.listen_host, s.listen_port)
        server.start()
        log.info("API on http://%s:%d  (GET /status, /config)", s.listen_host, server.port)
        log.info("watching %s branch %s, every %gs", scrub(s.repo), s.branch, s.poll_interval_s)
        # A replica that dies or turns unhealthy is replaced now, not at the next poll.
        self.engine.on_replica_failure(self.scheduler.trigger)
        # The autoscaler samples the ingress on its own tick; a decision runs a pass at once.
        autoscale_with(self.engine, self.reconciler, self.scheduler.trigger)
        self.scheduler.start()
        try:
            stop.wait()
            log.info("stopping; replicas keep running and a restarted daemon adopts them")
        finally:
            self.scheduler.shutdown(wait=True)
            server.stop()

    def close(self) -> None:
        self.target.close()
        self.engine.close()
        self.store.close()


def build_daemon(settings: DaemonSettings, *, background: bool = True) -> Daemon:
    """Open the state directory (refusing a second daemon on it) and build every part. With
    `background`, commits are prepared off the pass (the daemon); without, inline (`--once`)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = StateStore(settings.state_dir)
    try:
        engine = make_engine(settings.engine)
        source = GitSource(
            settings.repo,
            settings.branch,
            settings.state_dir / "git",
            timeout_s=settings.git_timeout_s,
        )
        ready = _Relay()
        target = GitTarget(
            source=source,
            store=store,
            config_path=settings.config_path,
            load=make_loader(settings.engine),
            background=background,
            on_ready=ready,
        )
        metrics = Metrics()
        reconciler = Reconciler(
            target=target,
            engine=engine,
            redact=spec.redacted_document,
            interval_s=settings.poll_interval_s,
            metrics=metrics,
            container_slots=settings.max_parallel_starts,
        )
        scheduler = PassScheduler(reconciler.run_pass, interval_s=settings.poll_interval_s)
        ready.to(scheduler.trigger)  # a prepared commit is deployed at once
    except BaseException:
        store.close()
        raise
    return Daemon(settings, store, engine, target, reconciler, metrics, scheduler)


def autoscale_with(engine: DockerEngine, reconciler: Reconciler, wake: Callable[[], None]) -> None:
    """Feed the reconciler's autoscaler the ingress's load; `wake()` when a target moves."""
    reconciler.autoscaler.on_change(wake)
    engine.on_load(reconciler.autoscaler.record, AUTOSCALE_TICK_S)


class _Relay:
    """A callback that can be pointed at its receiver after it was handed out."""

    def __init__(self) -> None:
        self._target: Callable[[], None] = lambda: None

    def to(self, target: Callable[[], None]) -> None:
        self._target = target

    def __call__(self) -> None:
        self._target()


@dataclass
class Up:
    """`reconciler up`: a working tree applied by a reconciler of its own, no git, no API."""

    engine: DockerEngine
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
    target = WorkTreeTarget(root=root, config_path=config_path, load=make_loader(engine_settings))
    reconciler = Reconciler(
        target=target, engine=engine, redact=spec.redacted_document, interval_s=UP_INTERVAL_S
    )
    return Up(engine, reconciler)


def run_down(engine_settings: EngineSettings) -> None:
    """Remove every container and network an instance owns (after `up --detach`)."""
    make_engine(engine_settings).remove_all()
