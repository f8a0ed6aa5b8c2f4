"""The one place that wires concrete classes together: the daemon's core (state store, git
target, engine, reconciler, metrics) for `reconciler run`, and `reconciler up` / `down`.

The driving adapters (the HTTP API and the scheduler) sit above this module: `cli.run_cmd` builds a
`Daemon` here and hands its parts to them. Nothing here decides anything about replicas.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reconciler import spec
from reconciler.errors import ReconcilerError
from reconciler.metrics import Metrics
from reconciler.model import ApplicationStatus, ServeConfig, Snapshot
from reconciler.reconcile import GitTarget, Reconciler, WorkTreeTarget
from reconciler.reconcile.target import Loader
from reconciler.runtime.docker_engine import DockerEngine
from reconciler.runtime.images import tags_of
from reconciler.runtime.remote_code import DEFAULT_MAX_BYTES, CodeFetcher, default_cache_dir
from reconciler.runtime.wheels import PipSettings
from reconciler.source import GitSource
from reconciler.state import StateStore

log = logging.getLogger(__name__)

EXIT_OK, EXIT_INVALID, EXIT_UNAVAILABLE, EXIT_NOT_CONVERGED = 0, 1, 3, 4


@dataclass(frozen=True)
class EngineSettings:
    instance: str = "default"
    default_image: str = "serve-reconciler/python:bookworm"
    publish_host: str = "127.0.0.1"
    allowed_images: tuple[str, ...] = ()
    cache_dir: Path | None = None  # wheels, fetched code; default: STATE_DIR/cache, ~/.cache
    pip_index_url: str | None = None
    pip_extra_index_urls: tuple[str, ...] = ()
    pip_find_links: tuple[str, ...] = ()
    max_code_bytes: int = DEFAULT_MAX_BYTES
    code_timeout_s: float = 60.0
    code_file_roots: tuple[Path, ...] = ()
    keep_images: int = 3  # the images of this many applied commits survive the GC


@dataclass(frozen=True)
class DaemonSettings:
    repo: str
    branch: str = "main"
    config_path: str = "serve_config.yaml"
    poll_interval_s: float = 15.0
    state_dir: Path = Path(".reconciler-state")
    listen_host: str = "127.0.0.1"
    listen_port: int = 8265
    webhook_secret: str | None = None
    git_timeout_s: float = 60.0
    max_parallel_starts: int | None = None  # None: reconcile.actions.default_container_slots()
    engine: EngineSettings = EngineSettings()


def make_engine(settings: EngineSettings) -> DockerEngine:
    pip = PipSettings(
        index_url=settings.pip_index_url,
        extra_index_urls=settings.pip_extra_index_urls,
        find_links=settings.pip_find_links,
    )
    return DockerEngine(
        instance=settings.instance,
        default_image=settings.default_image,
        publish_host=settings.publish_host,
        image_allowlist=settings.allowed_images,
        cache_dir=settings.cache_dir,
        pip=pip,
    )


def make_fetcher(settings: EngineSettings) -> CodeFetcher:
    return CodeFetcher(
        settings.cache_dir or default_cache_dir(),
        max_bytes=settings.max_code_bytes,
        timeout_s=settings.code_timeout_s,
        file_roots=settings.code_file_roots,
    )


class ImageKeeper:
    """The image GC's memory: the built images of the last `keep` applied commits, in the
    store (the daemon) or in memory (`up`). After each apply the engine removes the rest, in a
    thread of its own: listing every container and image must not delay the replicas' start."""

    def __init__(
        self,
        engine: DockerEngine,
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

    def applied(self, commit: str) -> None:
        if self._store is None and self._recent and self._recent[-1] == self.pending:
            return  # `up` re-reads its tree every pass: nothing new was applied
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
            except ReconcilerError as exc:  # next apply tries again; nothing depends on it
                log.warning("could not remove unused images: %s", exc)
                return
        if removed:
            log.info("removed %d image(s) no longer used: %s", len(removed), ", ".join(removed))


class _AppliedHook(StateStore):
    """The daemon's store, telling the ImageKeeper when a commit is applied."""

    def __init__(self, state_dir: Path, keeper: Callable[[], ImageKeeper | None]) -> None:
        super().__init__(state_dir)
        self._keeper = keeper

    def set_applied(
        self, commit: str, config_path: str, document_json: str, received_at: float
    ) -> None:
        super().set_applied(commit, config_path, document_json, received_at)
        keeper = self._keeper()
        if keeper is not None:
            keeper.applied(commit)


def preparing_loader(engine: DockerEngine, fetch: spec.Fetch, keeper: ImageKeeper) -> Loader:
    """Load (remote code fetched), then prepare (images built). Synchronous for now: the pass
    driver's background preparation step is to call `engine.prepare` instead of this."""

    def load(tree: Path, config_path: str) -> ServeConfig:
        config = spec.load_config(tree, config_path, environ=os.environ, fetch=fetch)
        prepared = engine.prepare(config, progress=log.info)
        keeper.pending = frozenset(tags_of(prepared.deployments()))
        return prepared

    return load


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class Daemon:
    """The parts of a running daemon that the API and the scheduler need."""

    reconciler: Reconciler
    store: StateStore
    metrics: Metrics
    settings: DaemonSettings
    engine: DockerEngine

    def close(self) -> None:
        self.engine.close()
        self.store.close()


def build_daemon(settings: DaemonSettings) -> Daemon:
    """Open the state directory (refusing a second daemon on it) and build the reconciler."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    holder: list[ImageKeeper] = []
    store = _AppliedHook(settings.state_dir, lambda: holder[0] if holder else None)
    try:
        source = GitSource(
            settings.repo,
            settings.branch,
            settings.state_dir / "git",
            timeout_s=settings.git_timeout_s,
        )
        engine_settings = settings.engine
        if engine_settings.cache_dir is None:
            cache = settings.state_dir / "cache"
            engine_settings = dataclasses.replace(engine_settings, cache_dir=cache)
        engine = make_engine(engine_settings)
        holder.append(ImageKeeper(engine, engine_settings.keep_images, store))
        load = preparing_loader(engine, make_fetcher(engine_settings), holder[0])
        target = GitTarget(source=source, store=store, config_path=settings.config_path, load=load)
        metrics = Metrics()
        reconciler = Reconciler(
            target=target,
            engine=engine,
            redact=spec.redacted_document,
            interval_s=settings.poll_interval_s,
            metrics=metrics,
            container_slots=settings.max_parallel_starts,
        )
    except BaseException:
        store.close()
        raise
    return Daemon(reconciler, store, metrics, settings, engine)


def converge_once(daemon: Daemon, timeout_s: float = 600.0) -> int:
    """`run --once`: passes until the target has converged (or cannot), then an exit code."""
    return _converge_once(daemon.reconciler, timeout_s, daemon.settings.poll_interval_s)


def _converge_once(reconciler: Reconciler, timeout_s: float, interval_s: float) -> int:
    """`run --once`: passes until the target has converged (or cannot), then an exit code."""
    deadline = time.monotonic() + timeout_s
    while True:
        delay = reconciler.run_pass()
        snap = reconciler.snapshot
        if snap.attempt_outcome == "invalid":
            return EXIT_INVALID
        if snap.source_error or snap.engine_error:
            if time.monotonic() + (delay or interval_s) > deadline:
                return EXIT_UNAVAILABLE
        elif reconciler.last_settled:
            return EXIT_OK if _all_running(snap) else EXIT_NOT_CONVERGED
        if time.monotonic() > deadline:
            return EXIT_NOT_CONVERGED
        time.sleep(delay if delay is not None else min(interval_s, 1.0))


def _all_running(snap: Snapshot) -> bool:
    return bool(snap.applications) and all(
        a.status == ApplicationStatus.RUNNING for a in snap.applications
    )


def run_up(
    root: Path,
    config_path: str,
    engine_settings: EngineSettings,
    *,
    detach: bool = False,
    timeout_s: float = 300.0,
    echo: Callable[[str], None] = print,
) -> int:
    """`reconciler up`: apply a working tree; follow it until Ctrl-C, then remove what it started.
    With `detach`, return once every application is RUNNING and leave the replicas running."""
    engine = make_engine(engine_settings)
    engine.ping()
    keeper = ImageKeeper(engine, engine_settings.keep_images)
    prepare = preparing_loader(engine, make_fetcher(engine_settings), keeper)

    def load(tree: Path, path: str) -> ServeConfig:
        config = prepare(tree, path)
        keeper.applied("worktree")
        return config

    target = WorkTreeTarget(root=root, config_path=config_path, load=load)
    reconciler = Reconciler(
        target=target, engine=engine, redact=spec.redacted_document, interval_s=1.0
    )
    printer = _StatusPrinter(echo)
    deadline = time.monotonic() + timeout_s
    with stop_on_signals() as stop:
        try:
            while not stop.is_set():
                delay = reconciler.run_pass()
                snap = reconciler.snapshot
                printer.show(snap)
                if detach and reconciler.last_settled and _all_running(snap):
                    return EXIT_OK
                if detach and time.monotonic() > deadline:
                    echo(f"not RUNNING after {timeout_s:.0f}s; see the status above")
                    return EXIT_NOT_CONVERGED
                stop.wait(delay if delay is not None else 1.0)
        finally:
            if not detach:
                echo("removing the replicas and the ingress this run started...")
                engine.remove_all()
                echo("done")
    return EXIT_OK


def run_down(engine_settings: EngineSettings, echo: Callable[[str], None] = print) -> int:
    """Remove every container, network and image an instance owns (after `up --detach`)."""
    engine = make_engine(engine_settings)
    engine.remove_all()
    engine.remove_images()
    echo(f"removed everything owned by instance '{engine_settings.instance}'")
    return EXIT_OK


class _StatusPrinter:
    """Prints a status line each time an application or deployment status changes."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self._echo = echo
        self._last: dict[str, str] = {}

    def show(self, snap: Snapshot) -> None:
        stamp = time.strftime("%H:%M:%S")
        for app in snap.applications:
            self._line(app.name, f"{stamp} {app.name}: {app.status.value} {app.message}".rstrip())
            for dep in app.deployments:
                key = f"{app.name}/{dep.name}"
                text = f"{stamp}   {dep.name}: {dep.status.value} {dep.message}".rstrip()
                self._line(key, text)
        for error in (snap.engine_error, snap.source_error):
            if error:
                self._line("error", f"{stamp} error: {error}")

    def _line(self, key: str, text: str) -> None:
        body = text.split(" ", 1)[1]
        if self._last.get(key) != body:
            self._last[key] = body
            self._echo(text)
