"""The composition root's shared part: the engine `--engine` names, and what loads and
prepares configs for it (the sandbox, the remote-code fetcher, the image GC's memory), for the
daemon (`app/daemon.py`) and for `up` / `down` (`app/up.py`)."""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import naming, spec
from reconciler.errors import ReconcilerError
from reconciler.model import ServeConfig
from reconciler.ports import Engine
from reconciler.reconcile import Reconciler
from reconciler.reconcile.jobs import Progress
from reconciler.reconcile.target import Preparer
from reconciler.runtime.docker_engine import DockerEngine
from reconciler.runtime.images import tags_of
from reconciler.runtime.remote_code import CodeFetcher, default_cache_dir
from reconciler.runtime.sandbox import SandboxGraphBuilder
from reconciler.runtime.swarm_engine import SwarmEngine, detect_kind
from reconciler.runtime.wheels import PipSettings
from reconciler.settings import AUTOSCALE_TICK_S, EngineSettings

if TYPE_CHECKING:
    from reconciler.state import StateStore

log = logging.getLogger(__name__)


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
        ingress_network=settings.ingress_network,
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


def autoscale_with(engine: Engine, reconciler: Reconciler, wake: Callable[[], None]) -> None:
    """Feed the reconciler's autoscaler the ingress's load; `wake()` when a target moves."""
    reconciler.autoscaler.on_change(wake)
    engine.on_load(reconciler.autoscaler.record, AUTOSCALE_TICK_S)
