"""The ingress of one instance on one Docker host: an HAProxy container listening on
`http_options.host:port`, its runtime API on --publish-host (what swarm_ingress.py is for a
swarm). Where it listens, in the host's network or on the instance's bridge, is an
`ingress_network.IngressNetwork`.

A change of servers alone (replicas started, drained, replaced) is followed through HAProxy's
runtime API (`ingress_servers.sync`), each change read back before the pass goes on, and the file
is rewritten without a reload so a later reload agrees. A change of routes, applications or
settings reloads: HAProxy runs in master-worker mode (`-W`); SIGUSR2 makes the master re-exec and
start new workers while old ones finish their in-flight requests. On Linux the new worker binds
the listeners with SO_REUSEPORT next to the old one, so no connection is refused during a reload
(tests/runtime/test_runtime_ingress.py: requests in flight across reloads, no errors).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from reconciler.errors import EngineError
from reconciler.model import INGRESS_VERSION_TOKEN, HttpOptions, IngressConfig
from reconciler.runtime import containers, ingress_servers, labels
from reconciler.runtime.containers import Bridge
from reconciler.runtime.haproxy_admin import AdminError, HaproxyAdmin
from reconciler.runtime.ingress_network import IngressNetwork
from reconciler.runtime.ingress_reload import (
    await_listening,
    await_version,
    config_tar,
    read_config_tar,
)
from reconciler.runtime.load_sampler import read_loads
from reconciler.runtime.seam import inspect_or_none, remove_quietly, seam

log = logging.getLogger(__name__)

Api = Callable[[], Any]  # the docker SDK's low-level client, connected on first use


class HostIngress:
    """The ingress container, what it was last made to serve, and its runtime API."""

    def __init__(
        self,
        api: Api,
        *,
        instance: str,
        name: str,
        network: str,
        image: str,
        publish_host: str,
        listen_on: Callable[[], IngressNetwork],
        ensure_network: Callable[[], Bridge],
        forget_network: Callable[[EngineError], None],
    ) -> None:
        """`listen_on` says where the ingress listens; `ensure_network` makes the instance's
        network if need be and returns its addresses."""
        self._api, self._instance, self.name = api, instance, name
        self._network, self._image, self._publish_host = network, image, publish_host
        self._listen_on = listen_on
        self._ensure_network, self._forget_network = ensure_network, forget_network
        self._labels: dict[str, str] = {}  # the running ingress container's
        self._lock = threading.Lock()
        self._applied: tuple[HttpOptions, IngressConfig, Bridge] | None = None
        self._leaving = 0  # drained servers the ingress still serves requests on
        self._admin: HaproxyAdmin | None = None
        self._said_no_admin = False
        self.reloads = 0  # HAProxy reloads asked for (not counting a first start)
        self.runtime_changes = 0  # changes of servers made through the runtime API

    @property
    def admin(self) -> HaproxyAdmin | None:
        """The running ingress's runtime API where this host reaches it (None: no ingress,
        or one made by an older reconciler, without a published admin port)."""
        return self._admin

    # --- what the last observation saw ---------------------------------------------------------

    def observe(self, entries: list[dict[str, Any]]) -> None:
        """From the pass's container listing: a missing or stopped ingress makes the next
        apply() redo its work; a running one's admin port is kept current."""
        ingress = [e for e in entries if (e.get("Labels") or {}).get(labels.ROLE) == "ingress"]
        running = [e for e in ingress if e.get("State") == "running"]
        if not running:
            self.forget()
            return
        self._labels = dict(running[0].get("Labels") or {})
        self._admin = self._admin_of(running[0])
        if self._admin is None and not self._said_no_admin:
            self._said_no_admin = True
            log.warning(
                "the ingress %s publishes no runtime API (made by an older reconciler): every "
                "replica change reloads it and autoscaling has no load to go by; remove it "
                "(`docker rm -f %s`) to have it made again",
                self.name,
                self.name,
            )

    def backend_loads(self) -> dict[str, float] | None:
        """Requests in flight per backend: the autoscaler's input (None: no runtime API)."""
        admin = self._admin
        return read_loads(admin) if admin is not None else None

    def in_flight(self) -> dict[str, int] | None:
        """Requests running or queued per server name (None: no runtime API, or it failed)."""
        admin = self._admin
        if admin is None:
            return None
        try:
            return ingress_servers.in_flight_by_server(admin)
        except AdminError as exc:
            log.debug("cannot read the ingress's in-flight counts: %s", exc)
            return None

    def forget(self) -> None:
        """Nothing is known to run (the ingress is gone, or everything was removed)."""
        with self._lock:
            self._applied = None
        self._admin = None

    # --- applying ------------------------------------------------------------------------------

    def apply(self, http: HttpOptions | None, ingress: IngressConfig | None) -> None:
        """Make the ingress serve `ingress` on `http` (None: remove it); returns once it does."""
        with self._lock:
            if http is None or ingress is None:
                self._remove()
                self._applied = None
                self._admin = None
                return
            bridge = self._ensure_network()  # made again elsewhere: the router moves with it
            applied = self._applied
            if applied == (http, ingress, bridge) and not self._leaving:
                return
            container_id, running = self._container(http, bridge)
            followed = (
                running
                and applied is not None
                and applied[0] == http
                and self._follow_servers(container_id, applied[1], ingress)
            )
            if not followed:
                self._reload(container_id, running, http, ingress)
                self._leaving = 0  # a reloaded HAProxy starts with the routable servers only
            self._applied = (http, ingress, bridge)

    def _follow_servers(self, container_id: str, old: IngressConfig, new: IngressConfig) -> bool:
        """Move the running HAProxy's servers through its runtime API; False when that cannot
        be done (settings changed, no admin port, the API failed): the caller reloads."""
        admin = self._admin
        if admin is None or not ingress_servers.runtime_can_follow(old, new):
            return False
        try:
            result = ingress_servers.sync(admin, new.servers, new.backends)
        except AdminError as exc:
            log.warning("the ingress's runtime API failed (%s); reloading it instead", exc)
            return False
        self._leaving = result.leaving
        self.runtime_changes += int(result.changed)
        if new.text != old.text:
            self._write(container_id, new)  # so that a later reload agrees
        return True

    def _write(self, container_id: str, ingress: IngressConfig) -> str:
        """Write the config (its version stamped in) and its files; return the version."""
        version = hashlib.sha256(ingress.text.encode("utf-8")).hexdigest()[:16]
        text = self._listen_on().config_text(
            ingress.text.replace(INGRESS_VERSION_TOKEN, version), self._labels, self._publish_host
        )
        with seam("write the ingress config"):
            self._api().put_archive(
                container_id, containers.INGRESS_CFG_DIR, config_tar(text, ingress.files)
            )
        return version

    def _reload(
        self, container_id: str, running: bool, http: HttpOptions, ingress: IngressConfig
    ) -> None:
        version = self._write(container_id, ingress)
        try:
            with seam("reload the ingress"):
                if running:
                    self._api().kill(container_id, signal="SIGUSR2")
                    self.reloads += 1
                else:
                    self._api().start(container_id)
        except EngineError as exc:
            self._forget_network(exc)
            raise
        if not running:
            self._learn_admin(container_id)
            await_listening(self._admin, lambda: self._exited(container_id), self.name)
        if INGRESS_VERSION_TOKEN in ingress.text:
            resend = (lambda: self._resend_reload(container_id)) if running else None
            await_version(http, version, resend, self.name)

    def _learn_admin(self, container_id: str) -> None:
        """The runtime API of a freshly started ingress (observe() keeps it current)."""
        info = inspect_or_none(self._api, container_id) or {}
        bindings = ((info.get("NetworkSettings") or {}).get("Ports") or {}).get(
            f"{containers.ADMIN_PORT}/tcp"
        ) or []
        ports = [
            {
                "PrivatePort": containers.ADMIN_PORT,
                "PublicPort": b["HostPort"],
                "IP": b.get("HostIp"),
            }
            for b in bindings
            if b.get("HostPort")
        ]
        self._admin = self._admin_of({"Labels": self._labels, "Ports": ports})

    def _written(self, container_id: str) -> str:
        """The config the running ingress was last given ("" if it cannot be read)."""
        try:
            with seam("read the ingress config"):
                stream, _ = self._api().get_archive(container_id, containers.INGRESS_CFG)
                return read_config_tar(b"".join(stream))
        except EngineError:
            return ""

    def _exited(self, container_id: str) -> str | None:
        """What a stopped ingress said last (None: it runs)."""
        info = inspect_or_none(self._api, container_id)
        if info is not None and (info.get("State") or {}).get("Running"):
            return None
        with contextlib.suppress(EngineError), seam("read the ingress's log"):
            return str(self._api().logs(container_id, tail=5).decode("utf-8", "replace")).strip()
        return ""

    def _admin_of(self, entry: dict[str, Any]) -> HaproxyAdmin | None:
        address = self._listen_on().admin_address(self._publish_host, entry)
        if address is None:
            return None
        known = self._admin
        if known is not None and known.address == address:
            return known
        return HaproxyAdmin(address)

    def _resend_reload(self, container_id: str) -> None:
        with contextlib.suppress(EngineError), seam("reload the ingress"):
            self._api().kill(container_id, signal="SIGUSR2")

    def _container(self, http: HttpOptions, bridge: Bridge) -> tuple[str, bool]:
        """(id, running) of an ingress listening on http.host:http.port, recreated if needed."""
        existing = inspect_or_none(self._api, self.name)
        if existing is not None:
            found = existing["Config"].get("Labels") or {}
            if found.get(labels.OWNER) != self._instance:
                raise EngineError(f"container {self.name} is not owned by this reconciler")
            status = existing["State"]["Status"]
            kept = status in ("running", "created")
            if kept and self._listen_on().serves(existing, http, bridge):
                self._labels = dict(found)
                if status == "running" and self._applied is None:  # first met by this process
                    self._listen_on().adopt(lambda: self._written(existing["Id"]))
                return existing["Id"], status == "running"
            remove_quietly(self._api, existing["Id"])
        api = self._api()
        args = self._listen_on().create_args(self._network, http, self._publish_host, bridge)
        self._labels = {**containers.base_labels(self._instance, "ingress"), **args["labels"]}
        with seam(f"create {self.name}"):
            created = api.create_container(
                self._image,
                command=containers.INGRESS_COMMAND,
                name=self.name,
                user=args["user"],
                labels=self._labels,
                ports=args["ports"],
                host_config=api.create_host_config(**args["host_config"]),
                stop_timeout=10,
            )
        return str(created["Id"]), False

    def _remove(self) -> None:
        existing = inspect_or_none(self._api, self.name)
        if (
            existing
            and (existing["Config"].get("Labels") or {}).get(labels.OWNER) == self._instance
        ):
            remove_quietly(self._api, existing["Id"])
