"""The daemon (`reconciler run`): state store, git target, engine, reconciler, metrics,
scheduler and HTTP API, built and wired. Only `run` imports this: `up` and `down` start without
Flask, APScheduler, GitPython or sqlite."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler import spec
from reconciler.api import ApiServer, create_app
from reconciler.app.engine import (
    ImageKeeper,
    autoscale_with,
    make_engine,
    make_fetcher,
    make_loader,
)
from reconciler.commitstatus import CommitStatusReporter
from reconciler.metrics import Metrics
from reconciler.ports import Engine
from reconciler.reconcile import GitTarget, Reconciler
from reconciler.reconcile.converge import Verdict, converge
from reconciler.reconcile.pinning import PinControl
from reconciler.scheduler import PassScheduler
from reconciler.settings import DaemonSettings
from reconciler.source import GitSource, scrub
from reconciler.state import StateStore

log = logging.getLogger(__name__)

REPORT_FLUSH_S = 5.0  # on the way out, how long the last commit statuses may take to send


class _AppliedHook(StateStore):
    """The daemon's store, telling the ImageKeeper when a commit is applied (the GitTarget
    records it here)."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.keeper: ImageKeeper | None = None

    def set_applied(
        self, commit: str, config_path: str, document_json: str, received_at: float
    ) -> None:
        super().set_applied(commit, config_path, document_json, received_at)
        if self.keeper is not None:
            self.keeper.applied(commit)


@dataclass
class Daemon:
    """A built daemon: `serve` runs it until `stop` is set, `once` until a verdict."""

    settings: DaemonSettings
    store: StateStore
    engine: Engine
    target: GitTarget
    reconciler: Reconciler
    metrics: Metrics
    scheduler: PassScheduler
    reporter: CommitStatusReporter | None = None

    def once(self, timeout_s: float) -> Verdict:
        report = self.reporter.observe if self.reporter else lambda snap: None
        return converge(
            self.reconciler,
            timeout_s=timeout_s,
            interval_s=self.settings.poll_interval_s,
            on_pass=report,
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
            pins=PinControl(self.target),
            api_token=s.api_token,
            title=f"serve-reconciler: {s.engine.instance}",
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
        if self.reporter is not None:
            self.reporter.flush(REPORT_FLUSH_S)  # the last statuses of --once, or of a stop
            self.reporter.close()
        self.target.close()
        self.engine.close()
        self.store.close()


def build_daemon(settings: DaemonSettings, *, background: bool = True) -> Daemon:
    """Open the state directory (refusing a second daemon on it) and build every part. With
    `background`, commits are prepared off the pass (the daemon); without, inline (`--once`)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = _AppliedHook(settings.state_dir)
    try:
        cache = settings.state_dir / "cache"
        engine = make_engine(settings.engine, cache, settings.state_dir)
        keeper = ImageKeeper(engine, settings.engine.images.keep_images, store)
        store.keeper = keeper
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
            load=make_loader(settings.engine, make_fetcher(settings.engine, cache), engine),
            prepare=keeper.preparer(),
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
        reporter = _reporter(settings)
        scheduler = PassScheduler(
            _reporting(reconciler, reporter), interval_s=settings.poll_interval_s
        )
        ready.to(scheduler.trigger)  # a prepared commit (or a pin request) gets a pass at once
    except BaseException:
        store.close()
        raise
    return Daemon(settings, store, engine, target, reconciler, metrics, scheduler, reporter)


def _reporter(settings: DaemonSettings) -> CommitStatusReporter | None:
    if settings.commit_status is None:
        return None
    reporter = CommitStatusReporter(settings.commit_status)
    reporter.start()
    return reporter


def _reporting(
    reconciler: Reconciler, reporter: CommitStatusReporter | None
) -> Callable[[], float | None]:
    """The scheduler's pass: the reconcile pass, then the commit statuses it implies."""
    if reporter is None:
        return reconciler.run_pass

    def run_pass() -> float | None:
        delay = reconciler.run_pass()
        reporter.observe(reconciler.snapshot)
        return delay

    return run_pass


class _Relay:
    """A callback that can be pointed at its receiver after it was handed out."""

    def __init__(self) -> None:
        self._target: Callable[[], None] = lambda: None

    def to(self, target: Callable[[], None]) -> None:
        self._target = target

    def __call__(self) -> None:
        self._target()
