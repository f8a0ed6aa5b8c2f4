"""DockerEngine: the reconciler's seam to one Docker host (swarm_engine.py is the other
implementation of ports.Engine).

Every Docker SDK or connection error is wrapped here: an unreachable engine becomes
`EngineUnavailable`, a refused operation `EngineError`. `prepare()` turns a config into one whose
deployments name the image built for their version (`images.py`: base + packages + code +
runtime); replicas start from it. A deployment without one (prepare skipped, or its base image
missing) gets the runtime and code copied in as one tar before it starts (no bind mounts either
way, so a remote engine works).
`observe()` makes one list call per pass; the caches in `observe.Observer` keep idle passes free
of HTTP calls.

The ingress container, its runtime API and its reloads are `host_ingress.HostIngress`.

Drains: a drained replica is renamed with its deadline (STOPPING) once the ingress no longer
routes to it, and told to stop (SIGTERM) by `stop` on a later pass, when the ingress reports
nothing left on it (`observe` reads the in-flight counts of STOPPING replicas).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from reconciler import naming
from reconciler.errors import EngineError, EngineUnavailable, ImageMissing
from reconciler.model import (
    Capacity,
    CodeTree,
    DeploymentSpec,
    EngineNode,
    HttpOptions,
    IngressConfig,
    ObservedReplica,
    PackageSet,
    ReplicaState,
    ServeConfig,
)
from reconciler.runtime import containers, control, labels, secret_env
from reconciler.runtime.bundle import build_bundle
from reconciler.runtime.exits import ExitWatcher
from reconciler.runtime.haproxy_admin import HaproxyAdmin
from reconciler.runtime.health import HealthMonitor
from reconciler.runtime.host_ingress import HostIngress
from reconciler.runtime.images import ImageBuilder, Progress
from reconciler.runtime.ingress_network import IngressNetwork, choose, network_of
from reconciler.runtime.load_sampler import LoadSampler, LoadSink, sample
from reconciler.runtime.observe import Observer
from reconciler.runtime.prepare import Preparer, check_allowed, prepare_config
from reconciler.runtime.remote_code import default_cache_dir
from reconciler.runtime.seam import Conflict, LazyApi, Missing, inspect_or_none, remove_quietly
from reconciler.runtime.seam import seam as _seam
from reconciler.runtime.wheels import PipSettings
from reconciler.settings import INGRESS_NETWORKS, HostLimits

_BUNDLE_CACHE_SIZE = 16
_CAPACITY_TTL_S = 60.0  # `docker info` once a minute: cores and memory rarely change
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?")

log = logging.getLogger(__name__)


class DockerEngine(containers.InstanceNames):
    """The replicas and ingress of one reconciler instance on one Docker engine."""

    def __init__(
        self,
        *,
        instance: str,
        default_image: str,
        publish_host: str = "127.0.0.1",
        image_allowlist: Sequence[str] = (),
        limits: HostLimits | None = None,
        docker_client: Any | None = None,
        cache_dir: Path | None = None,
        pip: PipSettings | None = None,
        ingress_network: str = "auto",
    ) -> None:
        """`ingress_network`: where the ingress listens, "host", "bridge" or "auto"
        (runtime/ingress_network.py: `choose`)."""
        self._instance = instance
        self._default_image = default_image
        self._publish_host = publish_host
        self._allowlist = tuple(image_allowlist)
        self._limits = limits or HostLimits()
        self._capacity: tuple[float, Capacity] | None = None
        self._api = LazyApi(docker_client)
        self._lock = threading.Lock()
        self._network_lock = threading.Lock()
        self._network_ok = False
        self._bridge = containers.Bridge()  # the instance network's, once it is known to exist
        if ingress_network not in INGRESS_NETWORKS:
            raise ValueError(f"unknown ingress network {ingress_network!r}")
        self._asked_network = ingress_network
        self._listen: IngressNetwork | None = None  # chosen on first use (`listen_on`)
        self._listen_lock = threading.Lock()
        self._bundles: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._stopped: set[str] = set()  # drained replicas told to stop (SIGTERM)
        self.ingress = HostIngress(
            self._api,
            instance=instance,
            name=self.ingress_name,
            network=self.network_name,
            image=default_image,
            publish_host=publish_host,
            listen_on=self.listen_on,
            ensure_network=self._ensure_network,
            forget_network=self._forget_network,
        )
        self._health_monitor = HealthMonitor(control.health_error)
        self._exit_watcher: ExitWatcher | None = None
        self._load_sampler: LoadSampler | None = None
        # An engine object dropped (tests make many) stops its checks with it.
        weakref.finalize(self, self._health_monitor.close).atexit = False
        self.images = ImageBuilder(
            self._api,
            _seam,
            instance=instance,
            cache_dir=cache_dir or default_cache_dir(),
            pip=pip,
        )
        self._observer = Observer(
            network=self.network_name,
            publish_host=publish_host,
            logs=self._log_tail,
            health=self._health_output,
            monitor=self._health_monitor,
            router=lambda: self.listen_on().kind,
        )

    @property
    def ingress_admin(self) -> HaproxyAdmin | None:
        """The running ingress's runtime API where this host reaches it (None: no ingress,
        or one made by an older reconciler, without a published admin port)."""
        return self.ingress.admin

    @property
    def ingress_reloads(self) -> int:
        """HAProxy reloads asked for (not counting a first start)."""
        return self.ingress.reloads

    @property
    def ingress_runtime_changes(self) -> int:
        """Changes of servers made through the runtime API."""
        return self.ingress.runtime_changes

    def ping(self) -> None:
        with _seam("ping"):
            self._api().ping()

    def close(self) -> None:
        """Stop the background work: health checks, following the engine's events, sampling
        the ingress's load."""
        if self._exit_watcher is not None:
            self._exit_watcher.close()
        if self._load_sampler is not None:
            self._load_sampler.close()
        self._health_monitor.close()

    def on_load(self, sink: LoadSink, tick_s: float) -> None:
        """Hand `sink(time, {backend: requests in flight})` the ingress's load every `tick_s`
        (from a thread of its own, through the ingress's runtime API; nothing while there is
        no ingress)."""
        if self._load_sampler is not None:
            self._load_sampler.close()
        self._load_sampler = sample(self.ingress, sink, tick_s, self)

    def packages_image(self, base_image: str, packages: PackageSet, progress: Progress) -> str:
        """The base plus `packages` (what the sandbox imports the application's code in)."""
        return self.images.packages_image(base_image, packages, progress)

    def on_replica_failure(self, callback: Callable[[], None]) -> None:
        """Call `callback()` when a replica (or the ingress) exits, from the engine's events, or
        a replica becomes unhealthy, from its health checks, so that the daemon replaces it now
        rather than at its next poll."""
        self._health_monitor.on_unhealthy(lambda cid: callback())
        if self._exit_watcher is not None:
            self._exit_watcher.close()
        engine = weakref.ref(self)  # the watcher's thread must not keep the engine alive

        def api() -> Any:
            alive = engine()
            if alive is None:
                raise EngineUnavailable("the engine was dropped")
            return alive._api()

        ours = [f"{labels.OWNER}={self._instance}"]  # the replicas and the ingress
        self._exit_watcher = ExitWatcher(
            lambda filters: api().events(filters=filters, decode=True),
            ours,
            callback,
            settle=lambda cid: api().inspect_container(cid),
        )
        weakref.finalize(self, self._exit_watcher.close).atexit = False
        self._exit_watcher.start()

    # --- observe -------------------------------------------------------------------------------

    def capacity(self) -> Capacity:
        """The engine's cores and memory from `docker info` (cached a minute), scaled by the
        host limits; GPUs and custom resources are what the reconciler was told (Docker does
        not report them)."""
        now = time.monotonic()
        cached = self._capacity
        if cached is not None and now - cached[0] < _CAPACITY_TTL_S:
            return cached[1]
        with _seam("read the engine's capacity"):
            info = self._api().info()
        cores = float(info.get("NCPU") or 1)
        limits = self._limits
        capacity = Capacity(
            cores=cores,
            cpus=cores * limits.cpu_overcommit,
            memory=int(float(info.get("MemTotal") or 0) * limits.memory_overcommit),
            gpus=limits.gpus,
            custom=limits.custom,
            max_replicas=limits.replica_cap(cores),
        )
        self._capacity = (now, capacity)
        return capacity

    def observe(self) -> list[ObservedReplica]:
        owner = f"{labels.OWNER}={self._instance}"
        with _seam("list containers"):
            entries = self._api().containers(all=True, filters={"label": [owner]})
        replicas = [e for e in entries if (e.get("Labels") or {}).get(labels.ROLE) == "replica"]
        self.ingress.observe(entries)
        self._stopped &= {e["Id"] for e in replicas}
        return self._with_in_flight(self._observer.observe(replicas))

    def nodes(self) -> tuple[EngineNode, ...]:
        return ()  # one host: its room is `capacity()`

    def settling(self) -> str | None:
        return None  # apply_ingress returns once the ingress serves

    def _with_in_flight(self, replicas: list[ObservedReplica]) -> list[ObservedReplica]:
        """STOPPING replicas still running, with what the ingress has left on them (one
        `show stat` when there are any) and whether they were told to stop."""
        if not any(_draining(r) for r in replicas):
            return replicas
        counts = self.ingress.in_flight()
        by_replica = (
            {naming.server_replica_id(name): n for name, n in counts.items()}
            if counts is not None
            else None
        )
        return [
            replace(
                r,
                in_flight=None if by_replica is None else by_replica.get(r.container_id[:12], 0),
                stop_sent=r.container_id in self._stopped,
            )
            if _draining(r)
            else r
            for r in replicas
        ]

    def _log_tail(self, container_id: str) -> str:
        try:
            with _seam("read logs"):
                raw = self._api().logs(container_id, stdout=True, stderr=True, tail=60)
        except Missing:
            return ""
        return bytes(raw).decode("utf-8", "replace")

    def _health_output(self, container_id: str) -> str:
        try:
            with _seam("inspect"):
                info = self._api().inspect_container(container_id)
        except Missing:
            return ""
        log = ((info.get("State") or {}).get("Health") or {}).get("Log") or []
        return str(log[-1].get("Output", "")) if log else ""

    # --- images --------------------------------------------------------------------------------

    def prepare(
        self, config: ServeConfig, progress: Callable[[str], None] = log.info
    ) -> ServeConfig:
        """`config` with every deployment naming the image its version runs (`built_image`),
        built when missing; see `prepare.prepare_config` for what raises."""
        return prepare_config(config, self._preparer(progress))

    def _preparer(self, progress: Callable[[str], None]) -> Preparer:
        return Preparer(self.images, self._default_image, self._check_image, progress)

    def collect_images(self, keep: Collection[str]) -> list[str]:
        """Remove the images this instance built that no container uses and `keep` (the tags
        of the last few applied configs) does not name; the tags removed."""
        return self.images.collect(keep)

    def remove_images(self) -> None:
        """Remove every image this instance built that no container uses (`reconciler down`)."""
        self.images.remove_all()

    # --- replicas ------------------------------------------------------------------------------

    def start_replica(self, spec: DeploymentSpec, index: int) -> None:
        image = spec.built_image or spec.image or self._default_image
        if spec.built_image is None:
            self._check_image(image)
        bundle = None if spec.built_image else self._bundle(spec.code)
        self._ensure_network()
        name = naming.replica_name(self._instance, spec.app, spec.name, index)
        try:
            container_id = self._create_replica(spec, index, name, image)
        except ImageMissing:
            if spec.built_image is None:
                raise
            # Removed behind our back (a prune): build it again, under the same tag.
            self.images.forget(spec.built_image)
            self._preparer(log.info).built_image(spec)
            container_id = self._create_replica(spec, index, name, image)
        if container_id is None:
            return
        try:
            if bundle is not None:
                with _seam(f"copy code into {name}"):
                    self._api().put_archive(container_id, "/", bundle)
            secret = containers.replica_secrets(spec)
            if secret:
                with _seam(f"copy secret env into {name}"):
                    self._api().put_archive(container_id, "/", secret_env.secret_env_tar(secret))
            with _seam(f"start {name}"):
                self._api().start(container_id)
        except EngineError as exc:
            remove_quietly(self._api, container_id)
            self._forget_network(exc)
            raise
        self._observer.remember_hash(container_id, spec.user_config_hash)

    def _check_image(self, image: str) -> None:
        check_allowed(image, self._allowlist)

    def _bundle(self, code: CodeTree | None) -> bytes:
        key = (code.root, code.dirs, code.digest) if code else ()
        with self._lock:
            if key in self._bundles:
                self._bundles.move_to_end(key)
                return self._bundles[key]
        data = build_bundle(code)
        with self._lock:
            self._bundles[key] = data
            while len(self._bundles) > _BUNDLE_CACHE_SIZE:
                self._bundles.popitem(last=False)
        return data

    def _create_replica(
        self, spec: DeploymentSpec, index: int, name: str, image: str
    ) -> str | None:
        """The new container's id; None if a live container of that name already exists."""
        try:
            return self._create(spec, index, name, image)
        except Conflict:
            pass  # an earlier pass created it
        existing = inspect_or_none(self._api, name)
        if existing is None:
            return self._create(spec, index, name, image)
        found = existing["Config"].get("Labels") or {}
        if found.get(labels.OWNER) != self._instance:
            raise EngineError(f"container name {name} is taken by a container we do not own")
        whose = [found.get(k) for k in (labels.APP, labels.DEPLOYMENT, labels.REPLICA)]
        if whose != [spec.app, spec.name, str(index)]:
            raise EngineError(
                f"container name {name} is taken by replica {whose[2]} of deployment "
                f"'{whose[1]}' in application '{whose[0]}'; rename one of the two"
            )
        if existing["State"]["Status"] != "created":
            return None
        remove_quietly(self._api, existing["Id"])  # STALE: created by a pass that died before start
        return self._create(spec, index, name, image)

    def _create(self, spec: DeploymentSpec, index: int, name: str, image: str) -> str:
        api = self._api()
        with _seam(f"create {name}"):
            host_config = api.create_host_config(
                **containers.replica_host_config(
                    spec, self.network_name, self._publish_host, self._limits.hard_limits
                ),
                extra_hosts=self.listen_on().replica_hosts(self.ingress_name, self._bridge.gateway),
            )
            created = api.create_container(
                image,
                command=containers.REPLICA_COMMAND,
                name=name,
                user=containers.USER,
                working_dir="/app/work",
                environment=containers.replica_env(spec, index, self.router_url),
                labels={
                    **containers.replica_labels(self._instance, spec, index),
                    labels.ROUTER: self.listen_on().kind,
                },
                ports=[containers.REPLICA_PORT],
                host_config=host_config,
                stop_timeout=max(1, math.ceil(spec.graceful_shutdown_timeout_s)),
                healthcheck=containers.NO_IMAGE_HEALTHCHECK,
            )
        return str(created["Id"])

    def reconfigure(self, replica: ObservedReplica, spec: DeploymentSpec) -> None:
        if replica.control_url is None:
            raise EngineError(f"replica {replica.name} has no published control port")
        timeout = spec.health_check_timeout_s + spec.graceful_shutdown_timeout_s
        config_hash = control.reconfigure(
            replica.control_url, spec.user_config, spec.user_config_hash, timeout
        )
        self._observer.remember_hash(replica.container_id, config_hash)

    def drain(self, replica: ObservedReplica, timeout_s: float) -> None:
        if naming.drain_deadline(replica.name) is None:
            self._rename_for_drain(replica, time.time() + timeout_s)

    def stop(self, replica: ObservedReplica) -> None:
        with contextlib.suppress(Missing, Conflict), _seam(f"stop {replica.name}"):
            self._api().kill(replica.container_id, signal="SIGTERM")
        self._stopped.add(replica.container_id)

    def _rename_for_drain(self, replica: ObservedReplica, deadline: float) -> None:
        api = self._api()
        try:
            with _seam(f"rename {replica.name}"):
                api.rename(replica.container_id, naming.drain_name(replica.name, deadline))
        except Missing:
            return
        except Conflict:  # drained twice in one second: keep the name unique
            unique = f"{replica.name}-{replica.container_id[:8]}"
            with contextlib.suppress(Missing), _seam(f"rename {replica.name}"):
                api.rename(replica.container_id, naming.drain_name(unique, deadline))

    def remove(self, replica: ObservedReplica) -> None:
        remove_quietly(self._api, replica.container_id)
        self._observer.forget(replica.container_id)

    # --- network, ingress, teardown ----------------------------------------------------------

    def _ensure_network(self) -> containers.Bridge:
        """Make the instance's network if it is not there; return its IPv4 gateway and subnet
        (empty if it has none)."""
        # Held for the whole check-and-create: Docker allows two networks with one name, and
        # parallel starts would otherwise each create one ("network ... is ambiguous").
        with self._network_lock:
            if self._network_ok:
                return self._bridge
            api, name = self._api(), self.network_name
            with _seam(f"inspect network {name}"):
                found = [n for n in api.networks(names=[name]) if n.get("Name") == name]
            if any((n.get("Labels") or {}).get(labels.OWNER) != self._instance for n in found):
                raise EngineError(f"network {name} exists and is not owned by this reconciler")
            for extra in sorted(found, key=created_order)[1:]:
                with contextlib.suppress(Missing, Conflict), _seam(f"remove duplicate {name}"):
                    api.remove_network(extra["Id"])
            if not found:
                with contextlib.suppress(Conflict), _seam(f"create network {name}"):
                    api.create_network(
                        name,
                        driver="bridge",
                        check_duplicate=True,
                        labels=containers.base_labels(self._instance, "network"),
                    )
            with _seam(f"inspect network {name}"):
                self._bridge = containers.bridge_of(api.inspect_network(name))
            self._network_ok = True
            return self._bridge

    def listen_on(self) -> IngressNetwork:
        """Where the ingress listens (runtime/ingress_network.py), chosen once: for "auto", by
        whether the engine is this machine's and where the instance's ingress runs now."""
        with self._listen_lock:
            if self._listen is None:
                asked = self._asked_network
                existing = local = None
                if asked == "auto":
                    existing = inspect_or_none(self._api, self.ingress_name)
                    base_url = str(getattr(self._api(), "base_url", ""))
                    local = base_url.startswith("http+docker://localhost")
                kind = choose(asked, bool(local), existing)
                if asked == "auto" and kind == "bridge":
                    log.info(
                        "the ingress stays on the instance's bridge network (%s); "
                        "--ingress-network host moves it into the host's network",
                        "a remote engine" if not local else "where it runs now",
                    )
                self._listen = network_of(kind)
            return self._listen

    def _forget_network(self, exc: EngineError) -> None:
        """A start refused with 404 means the network we made is gone (pruned, engine reset):
        check and make it again next time instead of trusting the cached answer forever."""
        if isinstance(exc, Missing):
            with self._network_lock:
                self._network_ok = False

    def apply_ingress(self, http: HttpOptions | None, ingress: IngressConfig | None) -> None:
        self.ingress.apply(http, ingress)

    def remove_all(self) -> None:
        owner = f"{labels.OWNER}={self._instance}"
        api = self._api()
        with _seam("list containers"):
            entries = api.containers(all=True, filters={"label": [owner]})
        for entry in entries:
            remove_quietly(self._api, entry["Id"])
        with _seam("list networks"):
            networks = api.networks(filters={"label": [owner]})
        for network in networks:
            with contextlib.suppress(Missing, Conflict), _seam("remove network"):
                api.remove_network(network["Id"])
        self._health_monitor.retain(())
        with self._lock:
            self._network_ok = False
        self.ingress.forget()


def _draining(replica: ObservedReplica) -> bool:
    return replica.state is ReplicaState.STOPPING and bool(replica.drain_deadline)


def created_order(resource: dict[str, Any]) -> tuple[str, str, str]:
    """Sort key, oldest first, for Docker's `Created` (RFC 3339, nanoseconds with trailing
    zeros trimmed: as text `...00.12Z` sorts after `...00.1234Z`); Id breaks ties. The offset
    is left out: duplicates come from one daemon, which writes one offset."""
    match = _RFC3339.match(str(resource.get("Created", "")))
    seconds, fraction = match.groups() if match else ("", "")
    return seconds, (fraction or "").ljust(9, "0"), str(resource.get("Id", ""))
