"""SwarmEngine: the same runtime seam as DockerEngine (ports.Engine), on a Docker Swarm reached
through one of its managers (DOCKER_HOST). Swarm's scheduler places each replica on a node, and
moves the replicas of a node that is lost; the reconciler keeps Serve's semantics itself.

Why one service per replica, not one per deployment: Serve's semantics need every replica by
itself. A `user_config` change goes to each replica's control endpoint (any task template change
would replace every task), scaling adds or removes services without touching the running ones,
the rolling update is the planner's (start-first, Serve's 20 % batches, the old version drained
through the ingress before it is stopped) rather than Swarm's (one level of history, and an
automatic rollback that reports `rollback_completed`), and a restarted reconciler adopts each
replica from its service's labels. An unchanged deployment is never touched: an idle pass reads
the services, the tasks and (at most every few seconds) the nodes, three list calls in all.

The parts: swarm_specs (what a service is made of), swarm_observe (services and tasks to
ObservedReplica, nodes to EngineNode), swarm_ingress (the global HAProxy service and its servers
on every node), swarm_images (the registry), swarm_objects (the control token, secrets,
configs). Every SDK call goes through `seam`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker

from reconciler import naming
from reconciler.errors import EngineError, ReconcilerError
from reconciler.model import (
    Capacity,
    DeploymentSpec,
    EngineNode,
    HttpOptions,
    IngressConfig,
    ObservedReplica,
    PackageSet,
    ReplicaState,
    ServeConfig,
)
from reconciler.runtime import containers, control, labels, swarm_specs
from reconciler.runtime.exits import ExitWatcher
from reconciler.runtime.health import HealthMonitor
from reconciler.runtime.images import ImageBuilder, Progress
from reconciler.runtime.load_sampler import LoadSampler, LoadSink, sample
from reconciler.runtime.prepare import Preparer, check_allowed, prepare_config
from reconciler.runtime.remote_code import default_cache_dir
from reconciler.runtime.seam import Conflict, LazyApi, Missing, seam
from reconciler.runtime.secret_env import SECRET_ENV_FILE
from reconciler.runtime.swarm_images import RegistryImages
from reconciler.runtime.swarm_ingress import SwarmIngress
from reconciler.runtime.swarm_objects import SwarmObjects, load_token, referenced, token_id
from reconciler.runtime.swarm_observe import Json, Reading, SwarmObserver, engine_nodes
from reconciler.runtime.swarm_placement import capacity_of
from reconciler.runtime.wheels import PipSettings
from reconciler.settings import HostLimits

NODES_TTL_S = 5.0  # nodes are read again after this long, or at once after a node event
SOON_S = 1.0  # an ingress task on its way up gets a pass this soon, to be given its servers
REMOVE_WAIT_S = 60.0
log = logging.getLogger(__name__)


def is_swarm_manager(info: dict[str, Any]) -> bool:
    """`docker info` of a node that is an active swarm's manager."""
    swarm = info.get("Swarm") or {}
    return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))


def detect_kind(client: Any | None = None) -> str:
    """ "swarm" when DOCKER_HOST is an active swarm's manager, else "docker" (also when it
    cannot be asked now: the Docker engine then reports it unreachable, as it would)."""
    try:
        with seam("ask the engine whether it is a swarm manager"):
            info = (client or docker.from_env()).api.info()
    except ReconcilerError:
        return "docker"
    return "swarm" if is_swarm_manager(info) else "docker"


class SwarmEngine(containers.InstanceNames):
    """The replicas and ingress of one reconciler instance on one swarm."""

    def __init__(
        self,
        *,
        instance: str,
        default_image: str,
        token_file: Path,
        registry: str | None = None,
        image_allowlist: Sequence[str] = (),
        limits: HostLimits | None = None,
        docker_client: Any | None = None,
        cache_dir: Path | None = None,
        pip: PipSettings | None = None,
    ) -> None:
        self._instance, self._default_image = instance, default_image
        self._allowlist = tuple(image_allowlist)
        self._limits = limits or HostLimits()
        self._api = LazyApi(docker_client)
        self._network_lock = threading.Lock()
        self._token = load_token(token_file)
        self._token_id = token_id(self._token)
        self._monitor = HealthMonitor(
            lambda url, timeout: control.health_error(url, timeout, self._token)
        )
        weakref.finalize(self, self._monitor.close).atexit = False
        self._watcher: ExitWatcher | None = None
        self._callback: Callable[[], None] | None = None
        self._soon: threading.Timer | None = None
        self._load_sampler: LoadSampler | None = None
        self.images = ImageBuilder(
            self._api, seam, instance=instance, cache_dir=cache_dir or default_cache_dir(), pip=pip
        )
        self.registry = RegistryImages(self._api, seam, registry)
        self._objects = SwarmObjects(self._api, seam, instance=instance, token=self._token)
        self._observer = SwarmObserver(
            token=self._token, token_id=self._token_id, logs=self._task_logs,
            monitor=self._monitor,
        )  # fmt: skip
        self.ingress = SwarmIngress(
            self._api, seam, instance=instance, name=self.ingress_name,
            network=self.network_name, objects=self._objects, token=self._token,
            token_id=self._token_id,
        )  # fmt: skip
        self._network_id: str | None = None
        self._nodes: tuple[float, list[Json]] | None = None
        self._services: dict[str, Json] = {}  # replica id (task) -> its service, last seen
        self._node_view: tuple[EngineNode, ...] = ()
        self.node_events = 0  # node events seen on the manager's stream (tests read it)

    @property
    def token(self) -> str:
        """The control token replicas answer to (tests call replicas with it)."""
        return self._token

    def ping(self) -> None:
        with seam("ping"):
            info = self._api().info()
        if not is_swarm_manager(info):
            raise EngineError(
                "the engine DOCKER_HOST names is not a manager of an active swarm (docker info: "
                f"Swarm.LocalNodeState {(info.get('Swarm') or {}).get('LocalNodeState')!r}); "
                "point DOCKER_HOST at a manager, or run without --engine swarm"
            )

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        if self._soon is not None:
            self._soon.cancel()
        if self._load_sampler is not None:
            self._load_sampler.close()
        self._monitor.close()

    def on_load(self, sink: LoadSink, tick_s: float) -> None:
        """Hand `sink(time, {backend: requests in flight})` every `tick_s`: the loads of every
        node's ingress added up (a request counts on the node whose HAProxy took it)."""
        if self._load_sampler is not None:
            self._load_sampler.close()
        self._load_sampler = sample(self.ingress, sink, tick_s, self)

    def packages_image(self, base_image: str, packages: PackageSet, progress: Progress) -> str:
        """The base plus `packages`, on the manager (where the sandbox runs)."""
        return self.images.packages_image(base_image, packages, progress)

    def on_replica_failure(self, callback: Callable[[], None]) -> None:
        """`callback()` when a replica turns unhealthy, on every service or node event of ours
        (Swarm has no task events: a task that fails on a worker is seen by the next pass,
        and Swarm restarts it meanwhile), and soon after an ingress task starts."""
        self._callback = callback
        self._monitor.on_unhealthy(lambda tid: callback())
        if self._watcher is not None:
            self._watcher.close()
        engine = weakref.ref(self)  # the watcher's thread must not keep the engine alive

        def events(filters: dict[str, Any]) -> Any:
            alive = engine()
            if alive is None:
                raise EngineError("the engine was dropped")
            return alive._api().events(filters=filters, decode=True)

        def ours(event: dict[str, Any]) -> bool:
            alive = engine()
            return alive is not None and alive._on_event(event)

        self._watcher = ExitWatcher(
            events, [], callback, filters={"type": ["service", "node"]}, accept=ours
        )
        weakref.finalize(self, self._watcher.close).atexit = False
        self._watcher.start()

    def _on_event(self, event: dict[str, Any]) -> bool:
        """Whether an event of the manager's stream asks for a pass: any node event (a node
        lost or back: its nodes are read afresh), and the service events of this instance."""
        if event.get("Type") == "node":
            self.node_events += 1
            self._nodes = None
            return True
        name = str(((event.get("Actor") or {}).get("Attributes") or {}).get("name", ""))
        return name.startswith(f"serve-{naming.clean(self._instance)}-")

    def _pass_soon(self) -> None:
        callback = self._callback
        if callback is None or (self._soon is not None and self._soon.is_alive()):
            return
        self._soon = threading.Timer(SOON_S, callback)
        self._soon.daemon = True
        self._soon.start()

    # --- observe -------------------------------------------------------------------------------

    def observe(self) -> list[ObservedReplica]:
        owner = {"label": [f"{labels.OWNER}={self._instance}"]}
        api = self._api()
        with seam("list services"):
            services = api.services(filters=owner)
        with seam("list tasks"):
            tasks = api.tasks(filters=owner)
        reading = Reading.of(services, tasks, self._read_nodes())
        replicas = [s for s in services if _role(s) == "replica"]
        ingress = next((s for s in services if _role(s) == "ingress"), None)
        observed = self._observer.observe(reading, replicas)
        if self.ingress.observe(reading, ingress, time.time()):
            self._pass_soon()
        seen = self._observer.seen
        self._services = {rid: service for rid, (service, _) in seen.items()}
        running_on: dict[str, int] = {}
        for r in observed:
            task = seen[r.container_id][1]
            if r.state is ReplicaState.RUNNING and task is not None:
                node = str(task.get("NodeID"))
                running_on[node] = running_on.get(node, 0) + 1
        self._node_view = engine_nodes(reading, running_on)
        return self._with_in_flight(observed)

    def _read_nodes(self) -> list[Json]:
        now = time.monotonic()
        cached = self._nodes
        if cached is not None and now - cached[0] < NODES_TTL_S:
            return cached[1]
        with seam("list nodes"):
            nodes = list(self._api().nodes())
        self._nodes = (now, nodes)
        return nodes

    def nodes(self) -> tuple[EngineNode, ...]:
        return self._node_view

    def settling(self) -> str | None:
        starting = self.ingress.starting
        return f"the ingress is starting ({'; '.join(starting)})" if starting else None

    def capacity(self) -> Capacity:
        """The sum over the nodes that are ready and active: their cores times the overcommit,
        their memory, the GPUs and other generic resources they advertise."""
        return capacity_of(self._read_nodes(), self._limits)

    def _with_in_flight(self, replicas: list[ObservedReplica]) -> list[ObservedReplica]:
        draining = [r for r in replicas if r.state is ReplicaState.STOPPING and r.drain_deadline]
        if not draining:
            return replicas
        counts = self.ingress.in_flight()
        by_id = (
            None
            if counts is None
            else {naming.server_replica_id(name): n for name, n in counts.items()}
        )
        return [
            replace(r, in_flight=None if by_id is None else by_id.get(r.container_id[:12], 0))
            if r in draining
            else r
            for r in replicas
        ]

    def _task_logs(self, task_id: str) -> str:
        api = self._api()
        try:
            with seam("read a task's logs"):
                params = {"stdout": 1, "stderr": 1, "tail": 60}
                res = api._get(api._url("/tasks/{0}/logs", task_id), params=params)
                raw = api._get_result_tty(False, res, False)
        except EngineError:  # its node is gone, or the task with it
            return ""
        return bytes(raw).decode("utf-8", "replace")

    # --- images --------------------------------------------------------------------------------

    def prepare(
        self, config: ServeConfig, progress: Callable[[str], None] = log.info
    ) -> ServeConfig:
        """`config` with every deployment naming its image in the registry, pinned by digest
        (built on the manager and pushed when missing); the ingress's image is published too."""
        built = prepare_config(
            config, Preparer(self.images, self._default_image, self._check_image, progress)
        )
        self.registry.publish(self._default_image, progress)
        apps = []
        for app in built.applications:
            specs = tuple(
                replace(s, built_image=self.registry.publish(s.built_image, progress))
                if s.built_image
                else s
                for s in app.deployments
            )
            apps.append(replace(app, deployments=specs))
        return replace(built, applications=tuple(apps))

    def _check_image(self, image: str) -> None:
        check_allowed(image, self._allowlist)

    def collect_images(self, keep: Collection[str]) -> list[str]:
        """Remove the images this instance built on the manager that `keep` (pinned references)
        does not name, and the secrets and configs no service uses any more."""
        removed = self.images.collect(self.registry.keep(keep))
        self._collect_objects()
        return removed

    def remove_images(self) -> None:
        self.images.remove_all()

    def _collect_objects(self) -> None:
        owner = {"label": [f"{labels.OWNER}={self._instance}"]}
        with seam("list services"):
            services = self._api().services(filters=owner)
        self._objects.collect(referenced(services))

    # --- replicas ------------------------------------------------------------------------------

    def start_replica(self, spec: DeploymentSpec, index: int) -> None:
        if not spec.built_image:
            raise EngineError(
                f"no image was built for deployment '{spec.name}' of application '{spec.app}': "
                "on a swarm every node pulls the image a replica runs (see the log of its "
                "preparation)"
            )
        name = swarm_specs.service_name(
            naming.replica_name(self._instance, spec.app, spec.name, index)
        )
        inputs = swarm_specs.ReplicaInputs(
            instance=self._instance,
            image=spec.built_image,
            network=self._ensure_network(),
            router_url=self.router_url,
            token=self._objects.token_ref(),
            token_id=self._token_id,
            secret_env=self._secret_env(spec),
            hard_limits=self._limits.hard_limits,
        )
        service = swarm_specs.replica_service(spec, index, name, inputs)
        try:
            with seam(f"create service {name}"):
                self._api().create_service(**swarm_specs.create_args(service))
        except Conflict:
            self._check_taken(name, spec, index)  # an earlier pass made it: nothing to do

    def _secret_env(self, spec: DeploymentSpec) -> swarm_specs.FileRef | None:
        secret = containers.replica_secrets(spec)
        if not secret:
            return None
        data = json.dumps(secret, sort_keys=True).encode("utf-8")
        return self._objects.secret("env", data, SECRET_ENV_FILE)

    def _check_taken(self, name: str, spec: DeploymentSpec, index: int) -> None:
        with seam(f"inspect service {name}"):
            found = (self._api().inspect_service(name).get("Spec") or {}).get("Labels") or {}
        if found.get(labels.OWNER) != self._instance:
            raise EngineError(f"service name {name} is taken by a service we do not own")
        whose = [found.get(k) for k in (labels.APP, labels.DEPLOYMENT, labels.REPLICA)]
        if whose != [spec.app, spec.name, str(index)]:
            raise EngineError(
                f"service name {name} is taken by replica {whose[2]} of deployment "
                f"'{whose[1]}' in application '{whose[0]}'; rename one of the two"
            )

    def reconfigure(self, replica: ObservedReplica, spec: DeploymentSpec) -> None:
        if replica.control_url is None:
            raise EngineError(f"replica {replica.name} has no published control port")
        timeout = spec.health_check_timeout_s + spec.graceful_shutdown_timeout_s
        config_hash = control.reconfigure(
            replica.control_url, spec.user_config, spec.user_config_hash, timeout, self._token
        )
        self._observer.remember_hash(replica.container_id, config_hash)

    def drain(self, replica: ObservedReplica, timeout_s: float) -> None:
        """The drain deadline goes in a service label (a rename is refused, a task template
        change would replace the task): the replica is STOPPING from now on."""
        deadline = str(math.ceil(time.time() + timeout_s))
        for attempt in range(2):
            service = self._service(replica, fresh=attempt > 0)
            if service is None:
                return
            spec = dict(service["Spec"])
            spec["Labels"] = {**(spec.get("Labels") or {}), labels.DRAIN_DEADLINE: deadline}
            try:
                with seam(f"mark {replica.name} drained"):
                    self._api().update_service(
                        service["ID"], service["Version"]["Index"], **swarm_specs.update_args(spec)
                    )
                return
            except Missing:
                return
            except EngineError as exc:
                if "out of sequence" not in str(exc) or attempt:
                    raise  # (out of sequence: changed since read; read it again, once)

    def stop(self, replica: ObservedReplica) -> None:
        """Removing the service makes Swarm send SIGTERM (then SIGKILL after the replica's
        graceful_shutdown_timeout_s): it finishes what it has and exits."""
        self.remove(replica)

    def remove(self, replica: ObservedReplica) -> None:
        service = self._service(replica)
        if service is None:
            return
        with contextlib.suppress(Missing), seam(f"remove service {replica.name}"):
            self._api().remove_service(service["ID"])

    def _service(self, replica: ObservedReplica, fresh: bool = False) -> Json | None:
        known = self._services.get(replica.container_id)
        if known is not None and not fresh:
            return known
        try:
            with seam(f"inspect service {replica.name}"):
                return dict(self._api().inspect_service(known["ID"] if known else replica.name))
        except Missing:
            return None

    # --- network, ingress, teardown ----------------------------------------------------------

    def _ensure_network(self) -> str:
        """The instance's attachable overlay (replicas and the ingress share it), by ID. Held
        for the whole check-and-create: parallel starts would each try to make it."""
        with self._network_lock:
            return self._network_id or self._find_or_make_network()

    def _find_or_make_network(self) -> str:
        api, name = self._api(), self.network_name
        with seam(f"inspect network {name}"):
            found = [n for n in api.networks(names=[name]) if n.get("Name") == name]
        if any((n.get("Labels") or {}).get(labels.OWNER) != self._instance for n in found):
            raise EngineError(f"network {name} exists and is not owned by this reconciler")
        if found:
            network_id = str(found[0]["Id"])
        else:
            with seam(f"create network {name}"):
                made = api.create_network(
                    name, driver="overlay", attachable=True, check_duplicate=True,
                    labels=containers.base_labels(self._instance, "network"),
                )  # fmt: skip
            network_id = str(made["Id"])
        self._network_id = self._observer.network_id = network_id
        return network_id

    def apply_ingress(self, http: HttpOptions | None, ingress: IngressConfig | None) -> None:
        if http is None or ingress is None:
            self.ingress.apply(None, None, "")
            return
        self._ensure_network()
        self.ingress.apply(http, ingress, self.registry.publish(self._default_image))

    def remove_all(self) -> None:
        """Every service, secret, config and the network this instance owns, once their tasks
        are gone from every node."""
        owner = {"label": [f"{labels.OWNER}={self._instance}"]}
        api = self._api()
        with seam("list services"):
            services = api.services(filters=owner)
        for service in services:
            with contextlib.suppress(Missing), seam("remove service"):
                api.remove_service(service["ID"])
        self.ingress.remove()
        # The network and the secrets are in use until the tasks are gone from every node.
        deadline = time.monotonic() + REMOVE_WAIT_S
        while True:
            with seam("list networks"):
                networks = api.networks(filters=owner)
            for network in networks:
                with contextlib.suppress(EngineError), seam("remove network"):
                    api.remove_network(network["Id"])
            self._objects.collect(())
            left = self._leftovers(owner)
            if not left:
                break
            if time.monotonic() > deadline:
                raise EngineError(f"still in use {REMOVE_WAIT_S:.0f}s after removal: {left}")
            time.sleep(0.5)
        self._monitor.retain(())
        with self._network_lock:
            self._network_id = None

    def _leftovers(self, owner: dict[str, Any]) -> list[str]:
        api = self._api()
        with seam("list what is left"):
            left = [n["Name"] for n in api.networks(filters=owner)]
            left += [s["Spec"]["Name"] for s in api.secrets(filters=owner)]
            left += [c["Spec"]["Name"] for c in api.configs(filters=owner)]
        return left


def _role(service: Json) -> str:
    return str(((service.get("Spec") or {}).get("Labels") or {}).get(labels.ROLE, ""))
