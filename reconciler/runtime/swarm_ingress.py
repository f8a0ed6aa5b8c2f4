"""The ingress on Docker Swarm: one global HAProxy service (a task on every node, the http port
published in host mode on each, swarm_specs.ingress_service), its servers kept right on every
node through HAProxy's runtime API, so a rollout or a scale never replaces an ingress task.

- The rendered ingress less its servers (the skeleton: routes, backends, settings, the files it
  names) plus the servers' keywords and the http port make the ingress key. A new key is a new
  Swarm config and a service update: Swarm replaces the tasks one node at a time (a route change
  costs each node a moment while the others serve).
- Every pass, each ingress task that runs the current key on a ready node is brought to the
  rendered servers (`ingress_servers.sync`: add, then drain what left, confirmed by reading
  back) unless it is known to have them; a task that starts later (its node back, a
  replacement) is synced on the first pass that sees it running. Its admin API is reached at
  its node's address, through the admin gate (the token first: replica/admin_gate.py).
- A lost node's ingress is left alone: the others carry the traffic.
- Requests in flight on a drained replica are summed over every node's HAProxy (`in_flight`);
  unknown (None) when one that serves cannot be asked.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from reconciler.errors import EngineError
from reconciler.model import INGRESS_VERSION_TOKEN, HttpOptions, IngressConfig, IngressServer
from reconciler.runtime import containers, ingress_servers, labels
from reconciler.runtime.haproxy_admin import SERVERS, Address, AdminError, HaproxyAdmin
from reconciler.runtime.load_sampler import read_loads, summed
from reconciler.runtime.seam import Missing
from reconciler.runtime.swarm_objects import SwarmObjects
from reconciler.runtime.swarm_observe import Json, Reading, unix_time
from reconciler.runtime.swarm_specs import (
    GATE_FILE,
    GATE_PORT,
    IngressInputs,
    create_args,
    ingress_service,
    update_args,
)

Api = Callable[[], Any]
Seam = Callable[[str], AbstractContextManager[None]]
log = logging.getLogger(__name__)

# The single-host ingress also serves HAProxy's runtime API on a TCP port of its container; here
# that port would be open to the overlay (every replica), so it goes: the gate is the only way in.
_TCP_ADMIN = f"    stats socket ipv4@0.0.0.0:{containers.ADMIN_PORT} level admin\n"


GATE_ANSWER = "admin gate: "  # how the gate's own answers start (replica/admin_gate.py)


class GatedAdmin(HaproxyAdmin):
    """HAProxy's runtime API behind the admin gate: the token is the first line sent."""

    def __init__(self, address: Address, token: str, timeout_s: float = 2.0) -> None:
        super().__init__(address, timeout_s)
        self._token = token.encode("ascii")

    def _connect(self) -> socket.socket:
        sock = super()._connect()
        try:
            sock.sendall(self._token + b"\n")
        except OSError:
            sock.close()
            raise
        return sock

    def command(self, line: str) -> str:
        """HAProxy's answer; AdminError when the gate answered instead (a wrong token, or it
        could not relay), since an empty answer must keep meaning HAProxy's success."""
        answer = super().command(line)
        if answer.startswith(GATE_ANSWER):
            raise AdminError(f"the admin gate at {self._where()}: {answer.strip()}")
        return answer


def ingress_key(ingress: IngressConfig, http_port: int, image: str) -> str:
    """What the ingress's tasks must be replaced for: anything but its servers (a server's
    maxconn follows through the runtime API too)."""
    digest = hashlib.sha256()
    for part in (ingress.skeleton, repr(ingress.files), repr(ingress.backends)):
        digest.update(part.encode("utf-8") + b"\0")
    digest.update(f"{http_port}\0{image}".encode())
    return digest.hexdigest()[:12]


def maxconn(server: IngressServer) -> int | None:
    """The `maxconn N` among a server's keywords."""
    words = list(server.options)
    if "maxconn" in words[:-1]:
        with contextlib.suppress(ValueError):
            return int(words[words.index("maxconn") + 1])
    return None


def config_text(ingress: IngressConfig, key: str) -> str:
    """The configuration a new ingress task starts with: as rendered, with the key as its
    version and without the TCP admin socket."""
    if _TCP_ADMIN not in ingress.text:
        raise EngineError("the rendered ingress has no TCP admin socket line to take out")
    return ingress.text.replace(_TCP_ADMIN, "").replace(INGRESS_VERSION_TOKEN, key)


def gate_script() -> bytes:
    return (resources.files("reconciler.replica") / "admin_gate.py").read_bytes()


@dataclass(frozen=True)
class _Task:
    id: str
    node: str  # its node's name, for messages
    admin: Address | None  # None: not running yet
    key: str  # the ingress key of the configuration it runs
    young: bool  # running for less than GATE_START_S: its admin gate may not listen yet
    trouble: str = ""  # Swarm's error, when it has one (a port taken on that node...)


GATE_START_S = 10.0


def _task_key(task: Json) -> str:
    """The key in the name of the task's HAProxy configuration (swarm_objects names a config
    by the key it was made for)."""
    spec = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Configs") or ()
    for ref in spec:
        if (ref.get("File") or {}).get("Name") == containers.INGRESS_CFG:
            return str(ref.get("ConfigName", "")).rsplit("-", 1)[-1]
    return ""


class SwarmIngress:
    """The ingress service of one instance, and what each of its tasks was last synced to."""

    def __init__(
        self,
        api: Api,
        seam: Seam,
        *,
        instance: str,
        name: str,
        network: str,
        objects: SwarmObjects,
        token: str,
        token_id: str,
    ) -> None:
        self._api, self._seam = api, seam
        self._instance, self.name, self._network = instance, name, network
        self._objects, self._token, self._token_id = objects, token, token_id
        self._lock = threading.Lock()
        self._service: Json | None = None
        self._tasks: list[_Task] = []
        self._synced: dict[str, tuple[IngressServer, ...]] = {}  # task id -> servers it has
        self._leaving: dict[str, int] = {}  # task id -> drained servers still serving
        self._key: str | None = None
        self.updates = 0  # service creates and updates (a route change; tests count them)
        self.starting: list[str] = []  # after apply: where it runs the current key, not yet

    # --- what the last reading saw ---------------------------------------------------------

    def observe(self, reading: Reading, service: Json | None, now: float) -> bool:
        """Take the ingress service and its tasks on ready nodes from this reading; True when
        one is on its way up (the engine asks for a pass soon, to give it its servers)."""
        tasks: list[_Task] = []
        if service is not None:
            for task in reading.tasks.get(service["ID"], ()):
                node = str(task.get("NodeID") or "")
                if task.get("DesiredState") != "running" or not reading.node_ready(node):
                    continue
                status = task.get("Status") or {}
                running = status.get("State") == "running"
                tasks.append(
                    _Task(
                        id=str(task["ID"]),
                        node=reading.node_name(node),
                        admin=_gate_address(reading, task) if running else None,
                        key=_task_key(task),
                        young=now - unix_time(status.get("Timestamp")) < GATE_START_S,
                        trouble=str(status.get("Err") or ""),
                    )
                )
        with self._lock:
            self._service = service
            self._tasks = tasks
            keep = {t.id for t in tasks}
            self._synced = {k: v for k, v in self._synced.items() if k in keep}
            self._leaving = {k: v for k, v in self._leaving.items() if k in keep}
            synced = set(self._synced)
        return any(t.admin is None or (t.young and t.id not in synced) for t in tasks)

    def in_flight(self) -> dict[str, int] | None:
        """Requests running or queued per server name, summed over every node's HAProxy."""
        with self._lock:
            tasks = [t for t in self._tasks if t.admin is not None]
        total: dict[str, int] = {}
        try:
            for task in tasks:
                assert task.admin is not None
                counts = ingress_servers.in_flight_by_server(GatedAdmin(task.admin, self._token))
                for server, n in counts.items():
                    total[server] = total.get(server, 0) + n
        except AdminError as exc:
            log.debug("cannot read an ingress's in-flight counts: %s", exc)
            return None
        return total

    def backend_loads(self) -> dict[str, float] | None:
        """Requests in flight per backend (deployment), summed over every node's HAProxy: the
        autoscaler's input. None while no ingress task can be asked; raises AdminError when one
        that runs does not answer (that sample is skipped, rather than read low)."""
        with self._lock:
            admins = [t.admin for t in self._tasks if t.admin is not None]
        if not admins:
            return None
        return summed(read_loads(GatedAdmin(a, self._token)) for a in admins)

    # --- applying ----------------------------------------------------------------------------

    def apply(self, http: HttpOptions | None, ingress: IngressConfig | None, image: str) -> None:
        """Make every node's ingress serve `ingress` (None: remove the ingress). Raises
        EngineError while one on a ready node serves something else (an earlier configuration
        being replaced, or its runtime API failed): the pass then drains nothing. One still
        starting serves nothing yet: it is only said in `starting` (the pass is not settled)."""
        with self._lock:
            self.starting = []
            if http is None or ingress is None:
                self._remove()
                return
            key = ingress_key(ingress, http.port, image)
            if self._needs_update(key):
                self._deploy(http, ingress, image, key)
                self.starting = ["new tasks are coming up"]
            self._key = key
            tasks = list(self._tasks)
        self.starting += [_starting(t) for t in tasks if t.key == key and t.admin is None]
        behind = [f"{t.node} runs an earlier configuration" for t in tasks if t.key != key]
        problems = self._sync_all([t for t in tasks if t.key == key and t.admin], ingress)
        self.starting += [p for p in problems if p.endswith(": starting")]
        problems = [p for p in problems if not p.endswith(": starting")]
        if behind or problems:
            raise EngineError(
                "not every node serves the current configuration yet: "
                + "; ".join(behind + problems)
            )

    def _needs_update(self, key: str) -> bool:
        if self._service is None:
            return True
        found = (self._service.get("Spec") or {}).get("Labels") or {}
        return found.get(labels.INGRESS_KEY) != key or found.get(labels.TOKEN_ID) != self._token_id

    def _deploy(self, http: HttpOptions, ingress: IngressConfig, image: str, key: str) -> None:
        spec = ingress_service(self._inputs(http, ingress, image, key))
        api, existing = self._api(), self._service
        if existing is None:
            with self._seam(f"create the ingress service {self.name}"):
                api.create_service(**create_args(spec))
        else:
            version = existing["Version"]["Index"]
            with self._seam(f"update the ingress service {self.name}"):
                api.update_service(existing["ID"], version, **update_args(spec))
        self.updates += 1
        self._synced.clear()  # its tasks are replaced, and start with this configuration
        self._leaving.clear()
        log.info("ingress %s: configuration %s", self.name, key)

    def _inputs(
        self, http: HttpOptions, ingress: IngressConfig, image: str, key: str
    ) -> IngressInputs:
        o = self._objects
        directory = containers.INGRESS_CFG_DIR
        config = o.config(
            "ingress", config_text(ingress, key).encode("utf-8"), containers.INGRESS_CFG, key
        )
        files = [o.config("ingress-file", text.encode("utf-8"), f"{directory}/{name}")
                 for name, text in ingress.files]  # fmt: skip
        files.append(o.config("admin-gate", gate_script(), GATE_FILE))
        return IngressInputs(
            instance=self._instance,
            name=self.name,
            image=image,
            network=self._network,
            http_port=http.port,
            key=key,
            config=config,
            files=tuple(files),
            token=o.token_ref(),
            token_id=self._token_id,
        )

    def _sync_all(self, tasks: Sequence[_Task], ingress: IngressConfig) -> list[str]:
        """Sync every task (running the current configuration) not known to be in sync; what
        failed, per node."""
        due = [t for t in tasks if self._due(t.id, ingress)]
        if not due:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(due))) as pool:
            results = list(pool.map(lambda t: self._sync(t, ingress), due))
        return [r for r in results if r]

    def _due(self, task_id: str, ingress: IngressConfig) -> bool:
        with self._lock:
            return self._synced.get(task_id) != ingress.servers or bool(self._leaving.get(task_id))

    def _sync(self, task: _Task, ingress: IngressConfig) -> str | None:
        assert task.admin is not None
        admin = GatedAdmin(task.admin, self._token)
        try:
            result = ingress_servers.sync(admin, ingress.servers, ingress.backends)
            _follow_maxconn(admin, ingress.servers)
        except AdminError as exc:
            if task.young and "refused" in str(exc).lower():
                return f"{task.node}: starting"  # HAProxy runs, its gate not quite yet
            return f"{task.node}: {exc}"
        with self._lock:
            self._synced[task.id] = ingress.servers
            self._leaving[task.id] = result.leaving
        return None

    def _remove(self) -> None:
        service = self._service
        if service is not None:
            with contextlib.suppress(Missing), self._seam(f"remove the ingress {self.name}"):
                self._api().remove_service(service["ID"])
        self._service, self._tasks, self._key = None, [], None
        self._synced.clear()
        self._leaving.clear()

    def remove(self) -> None:
        with self._lock:
            self._remove()


def _starting(task: _Task) -> str:
    return f"{task.node}: starting" + (f" ({task.trouble})" if task.trouble else "")


def _follow_maxconn(admin: HaproxyAdmin, servers: Sequence[IngressServer]) -> None:
    """A server whose maxconn changed (max_ongoing_requests) gets the new one in place."""
    wanted = {s.key: maxconn(s) for s in servers}
    for row in admin.show_stat(SERVERS):
        want = wanted.get((row.proxy, row.server))
        if want is not None and row.slim != want:
            admin.set_server_maxconn(row.proxy, row.server, want)


def _gate_address(reading: Reading, task: Json) -> Address | None:
    ports = ((task.get("Status") or {}).get("PortStatus") or {}).get("Ports") or []
    port = next((p.get("PublishedPort") for p in ports if p.get("TargetPort") == GATE_PORT), None)
    host = reading.node_address(str(task.get("NodeID") or ""))
    return (host, int(port)) if host and port else None


def _where(address: Address) -> str:
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"
