"""The composition root: the one place that builds concrete classes and wires them together, for
the daemon (`reconciler run`: state store, git target, engine, reconciler, metrics, scheduler and
HTTP API) and for `reconciler up` / `down`. Nothing here decides anything about replicas; the
command line (cli/) parses flags into `settings` and maps verdicts to exit codes.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler import naming, spec
from reconciler.api import ApiServer, create_app
from reconciler.commitstatus import CommitStatusReporter
from reconciler.errors import ReconcilerError
from reconciler.metrics import Metrics
from reconciler.model import ServeConfig, Snapshot
from reconciler.ports import Engine
from reconciler.reconcile import GitTarget, Reconciler, WorkTreeTarget
from reconciler.reconcile.converge import Verdict, converge, verdict_of
from reconciler.reconcile.jobs import Progress
from reconciler.reconcile.pinning import PinControl
from reconciler.reconcile.target import Preparer
from reconciler.runtime.docker_engine import DockerEngine
from reconciler.runtime.images import tags_of
from reconciler.runtime.remote_code import CodeFetcher, default_cache_dir
from reconciler.runtime.sandbox import SandboxGraphBuilder
from reconciler.runtime.swarm_engine import SwarmEngine, detect_kind
from reconciler.runtime.wheels import PipSettings
from reconciler.scheduler import PassScheduler
from reconciler.settings import AUTOSCALE_TICK_S, DaemonSettings, EngineSettings
from reconciler.source import GitSource, scrub
from reconciler.state import StateStore

log = logging.getLogger(__name__)

UP_INTERVAL_S = 1.0
REPORT_FLUSH_S = 5.0  # on the way out, how long the last commit statuses may take to send


def make_engine(
    settings: EngineSettings, cache_dir: Path | None = None, state_dir: Path | None = None
) -> Engine:
    """The engine `settings.kind` names: one Docker host, or a swarm through a manager (its
    control token is kept in `state_dir`, else in the cache directory)."""
    images = settings.images
    pip = PipSettings(
        index_url=images.pip_index_url,
        extra_index_urls=images.pip_extra_index_urls,
        find_links=images.pip_find_links,
    )
    kind = detect_kind() if settings.kind == "auto" else settings.kind
    if kind == "swarm":
        home = state_dir or images.cache_dir or cache_dir or default_cache_dir()
        if settings.registry is None:
            log.warning(
                "--engine swarm without --registry: images are not pushed, so every node must "
                "already have each image a replica runs"
            )
        return SwarmEngine(
            instance=settings.instance,
            default_image=settings.default_image,
            token_file=home / f"swarm-token-{naming.clean(settings.instance)}",
            registry=settings.registry,
            image_allowlist=settings.allowed_images,
            limits=settings.limits,
            cache_dir=images.cache_dir or cache_dir,
            pip=pip,
        )
    return DockerEngine(
        instance=settings.instance,
        default_image=settings.default_image,
        publish_host=settings.publish_host,
        image_allowlist=settings.allowed_images,
        limits=settings.limits,
        cache_dir=images.cache_dir or cache_dir,
        pip=pip,
    )


def make_fetcher(settings: EngineSettings, cache_dir: Path | None = None) -> CodeFetcher:
    images = settings.images
    return CodeFetcher(
        images.cache_dir or cache_dir or default_cache_dir(),
        max_bytes=images.max_code_bytes,
        timeout_s=images.code_timeout_s,
        file_roots=images.code_file_roots,
    )


def make_loader(
    settings: EngineSettings,
    fetch: spec.Fetch | None = None,
    engine: Engine | None = None,
) -> Callable[[Path, str], ServeConfig]:
    """The config loader of `run` and `up`: from_env values from this process's environment,
    code that reading cannot decide built in a sandbox on the same engine (in the application's
    packages image, which `engine` builds), remote working_dir zips fetched with `fetch`."""
    sandbox = SandboxGraphBuilder(
        instance=settings.instance,
        default_image=settings.default_image,
        image_allowlist=settings.allowed_images,
        packages_image=engine.packages_image if engine is not None else None,
    )

    def load(tree: Path, config_path: str) -> ServeConfig:
        return spec.load_config(
            tree,
            config_path,
            environ=os.environ,
            graph_builder=sandbox,
            default_image=settings.default_image,
            fetch=fetch,
        )

    return load


class ImageKeeper:
    """The image GC's memory: the built images of the last `keep` applied commits, in the
    store (the daemon, across restarts) or in memory (`up`). After each apply the engine
    removes the rest, in a thread of its own: listing every container and image must not delay
    the replicas' start."""

    def __init__(
        self,
        engine: Engine,
        keep: int,
        store: StateStore | None = None,
        *,
        background: bool = True,
    ) -> None:
        self._engine = engine
        self._keep = max(1, keep)
        self._store = store
        self._background = background
        self._recent: collections.deque[frozenset[str]] = collections.deque(maxlen=self._keep)
        self._collecting = threading.Lock()
        self.pending: frozenset[str] = frozenset()  # the images of the config just prepared

    def preparer(self) -> Preparer:
        """The target's `prepare`: build the images, and remember which the config names."""

        def prepare(config: ServeConfig, progress: Progress) -> ServeConfig:
            prepared = self._engine.prepare(config, progress)
            self.pending = frozenset(tags_of(prepared.deployments()))
            return prepared

        return prepare

    def applied(self, commit: str) -> None:
        if self._store is None and self._recent and self._recent[-1] == self.pending:
            return  # nothing new was applied
        if self._store is not None:
            self._store.record_images(commit, sorted(self.pending))
            keep = self._store.recent_images(self._keep)
        else:
            self._recent.append(self.pending)
            keep = set().union(*self._recent)
        keep |= self.pending
        if self._background:
            threading.Thread(target=self.collect, args=(keep,), daemon=True).start()
        else:
            self.collect(keep)

    def collect(self, keep: set[str]) -> None:
        with self._collecting:  # one at a time; a later one sees what an earlier removed
            try:
                removed = self._engine.collect_images(keep)
            except ReconcilerError as exc:  # the next apply tries again; nothing depends on it
                log.warning("could not remove unused images: %s", exc)
                return
        if removed:
            log.info("removed %d image(s) no longer used: %s", len(removed), ", ".join(removed))


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


def autoscale_with(engine: Engine, reconciler: Reconciler, wake: Callable[[], None]) -> None:
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
