"""Where the single-host ingress listens: on the host's own network (the default), or as one more
container of the instance's bridge network with Docker publishing its ports.

`HostNetwork`: HAProxy binds `http_options.host:port` itself, so a client's connection reaches it
without docker-proxy, the userland proxy Docker puts behind every port published on the
loopback, which cost as much CPU a request as HAProxy itself (bench/RESULTS.md, issue 16). It
reaches the replicas at their bridge addresses as before; the replicas reach its router on the
bridge's gateway (each replica's /etc/hosts names the ingress there, so the router URL stays
`http://<ingress>:8001`); its runtime API listens on --publish-host at a port picked when the
container is made and kept in a label. A port below 1024 needs CAP_NET_BIND_SERVICE, which only
root can use in a container (Docker grants no ambient capabilities): then, and only then, HAProxy
runs as root with that one capability.

The router on the gateway is a host address, which containers of other networks (and the host
itself) can reach too: it takes connections from the instance's subnet only, never from the
gateway (the host), as the ingress container's router on the bridge was reached by the
replicas alone. Its calls reach the replicas from the gateway, where a replica takes no pickle
from the host; so it stamps each with a secret it tells the subnet alone, and a replica takes
a pickle from the gateway with that stamp (serve_replica/router_secret.py).

`BridgeNetwork` (`--ingress-network bridge`): no process that parses the internet's requests in
the host's network namespace, for a host whose firewall keeps containers from the host's own
addresses (a handle call goes to the gateway), or an engine this reconciler reaches remotely.
`choose` picks for `auto` (the default): bridge for a remote engine or where the instance's
ingress already runs on the bridge (made before: moving it is a restart of the ingress and a
rolling update, so it is asked for by name), host otherwise.

Both render the same configuration (routing.py binds container ports); `config_text` moves the
binds where this placement listens. Pure but for `pick_port`.
"""

from __future__ import annotations

import ipaddress
import random
import re
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.errors import EngineError
from reconciler.model import HttpOptions
from reconciler.runtime import containers, labels
from reconciler.runtime.containers import Bridge
from reconciler.runtime.control import local_address
from reconciler.runtime.observe import published_port
from reconciler.settings import INGRESS_NETWORKS

KINDS = tuple(k for k in INGRESS_NETWORKS if k != "auto")  # "auto" is `choose`'s
_PRIVILEGED_BELOW = 1024

# The binds routing.py renders (inside the ingress's own network namespace; the ports are
# routing's INGRESS_PORT, ROUTER_PORT and ADMIN_PORT, which containers.py repeats).
_INGRESS_BIND = f"    bind :{containers.REPLICA_PORT}\n"
_ROUTER_BIND = f"    bind :{containers.ROUTER_PORT}\n"
_ADMIN_BIND = f"    stats socket ipv4@0.0.0.0:{containers.ADMIN_PORT} level admin\n"
_MASTER_WORKER = "    master-worker\n"
# The router's stamp on the calls it carries, and where the subnet may read it (the replica
# runtime's serve_replica/router_secret.py, which imports nothing of ours, says the same).
SECRET_HEADER = "X-Serve-Router"
SECRET_PATH = "/-/router-secret"


@dataclass(frozen=True)
class Listen:
    """Where an ingress container was made to listen (what its labels say)."""

    http_host: str
    http_port: int
    gateway: str = ""  # host network: the bridge's gateway, where the router listens
    admin_port: int | None = None  # host network: the runtime API's port on --publish-host
    subnet: str = ""  # host network: the bridge's subnet, the router's only callers


class IngressNetwork(Protocol):
    kind: str

    def create_args(
        self, network: str, http: HttpOptions, publish_host: str, bridge: Bridge
    ) -> dict[str, Any]:
        """Keyword arguments for `create_container` beyond image, command, name and labels:
        `host_config` (for `create_host_config`), `user`, `ports`, `labels` (added)."""

    def serves(self, info: dict[str, Any], http: HttpOptions, bridge: Bridge) -> bool:
        """Whether an existing ingress container (`docker inspect`) listens as asked, for
        replicas on `bridge`."""

    def config_text(self, text: str, entry_labels: dict[str, str], publish_host: str) -> str:
        """The rendered configuration with its binds where this container listens."""

    def admin_address(self, publish_host: str, entry: dict[str, Any]) -> tuple[str, int] | None:
        """Where this host reaches the runtime API, from a container list entry (or inspect
        data shaped like one: `Labels`, `Ports`)."""

    def replica_hosts(self, ingress_name: str, gateway: str) -> dict[str, str]:
        """`extra_hosts` for a replica, so the router URL reaches the ingress."""

    def adopt(self, written: Callable[[], str]) -> None:
        """Keep what the running ingress's config (`written()`, as the engine wrote it) holds
        that this process would otherwise make anew."""


class BridgeNetwork:
    """The ingress on the instance's bridge network, its ports published by Docker."""

    kind = "bridge"

    def create_args(
        self, network: str, http: HttpOptions, publish_host: str, bridge: Bridge
    ) -> dict[str, Any]:
        return {
            "host_config": {
                **containers.HARDENING,
                "network_mode": network,
                "port_bindings": {
                    containers.REPLICA_PORT: (http.host, http.port),
                    containers.ADMIN_PORT: (publish_host,),
                },
            },
            "user": containers.USER,
            "ports": [containers.REPLICA_PORT, containers.ADMIN_PORT],
            "labels": {},
        }

    def serves(self, info: dict[str, Any], http: HttpOptions, bridge: Bridge) -> bool:
        host = info.get("HostConfig") or {}
        bindings = (host.get("PortBindings") or {}).get(f"{containers.REPLICA_PORT}/tcp")
        wanted = [{"HostIp": http.host, "HostPort": str(http.port)}]
        return host.get("NetworkMode") != "host" and bindings == wanted

    def config_text(self, text: str, entry_labels: dict[str, str], publish_host: str) -> str:
        return text

    def admin_address(self, publish_host: str, entry: dict[str, Any]) -> tuple[str, int] | None:
        host = local_address(publish_host)
        port = published_port(host, entry.get("Ports") or [], containers.ADMIN_PORT)
        return None if port is None else (host, port)

    def replica_hosts(self, ingress_name: str, gateway: str) -> dict[str, str]:
        return {}  # Docker's DNS on the network names the ingress

    def adopt(self, written: Callable[[], str]) -> None:
        pass  # nothing of its own: the config is not even read


class HostNetwork:
    """The ingress in the host's network namespace, binding its ports itself."""

    kind = "host"

    def __init__(self) -> None:
        # New with each reconciler process, unless a running ingress has one (`adopt`).
        self.secret = secrets.token_urlsafe(24)

    def create_args(
        self, network: str, http: HttpOptions, publish_host: str, bridge: Bridge
    ) -> dict[str, Any]:
        if not bridge.gateway or not bridge.subnet:
            raise EngineError(
                f"network {network} has no IPv4 gateway and subnet for the ingress's router; "
                "run with --ingress-network bridge"
            )
        admin_port = pick_port(publish_host)
        listen = Listen(http.host, http.port, bridge.gateway, admin_port, bridge.subnet)
        privileged = http.port < _PRIVILEGED_BELOW
        return {
            "host_config": {
                **containers.HARDENING,
                "network_mode": "host",
                **({"cap_add": ["NET_BIND_SERVICE"]} if privileged else {}),
            },
            "user": "0:0" if privileged else containers.USER,
            "ports": [],
            "labels": {labels.INGRESS_LISTEN: listen_label(listen)},
        }

    def serves(self, info: dict[str, Any], http: HttpOptions, bridge: Bridge) -> bool:
        host = info.get("HostConfig") or {}
        listen = read_listen((info.get("Config") or {}).get("Labels") or {})
        return (
            host.get("NetworkMode") == "host"
            and listen is not None
            and (listen.http_host, listen.http_port, listen.gateway, listen.subnet)
            == (http.host, http.port, bridge.gateway, bridge.subnet)
        )

    def config_text(self, text: str, entry_labels: dict[str, str], publish_host: str) -> str:
        listen = read_listen(entry_labels)
        if listen is None or listen.admin_port is None:
            raise EngineError(f"the ingress container has no valid {labels.INGRESS_LISTEN} label")
        return host_binds(text, listen, publish_host, self.secret)

    def admin_address(self, publish_host: str, entry: dict[str, Any]) -> tuple[str, int] | None:
        listen = read_listen(entry.get("Labels") or {})
        if listen is None or listen.admin_port is None:
            return None
        return local_address(publish_host), listen.admin_port

    def replica_hosts(self, ingress_name: str, gateway: str) -> dict[str, str]:
        return {ingress_name: gateway} if gateway else {}

    def adopt(self, written: Callable[[], str]) -> None:
        """The router's secret of a running ingress (a restarted reconciler): kept, so the
        replicas need not learn another while old workers still stamp the old one."""
        found = re.search(rf"set-header {SECRET_HEADER} ([A-Za-z0-9_-]{{16,}})\n", written())
        if found:
            self.secret = found.group(1)


def network_of(kind: str) -> IngressNetwork:
    if kind == "host":
        return HostNetwork()
    if kind == "bridge":
        return BridgeNetwork()
    raise ValueError(f"unknown ingress network {kind!r} (one of: {', '.join(KINDS)})")


def choose(asked: str, local_engine: bool, existing: dict[str, Any] | None) -> str:
    """The network for `asked` ("host", "bridge" or "auto"), given whether the engine is this
    machine's (a unix socket) and the instance's ingress container as inspected (None: none)."""
    if asked != "auto":
        return asked
    if not local_engine:
        return "bridge"
    if existing is not None and (existing.get("HostConfig") or {}).get("NetworkMode") != "host":
        return "bridge"
    return "host"


def listen_label(listen: Listen) -> str:
    port = "" if listen.admin_port is None else str(listen.admin_port)
    return f"{listen.http_host}|{listen.http_port}|{listen.gateway}|{port}|{listen.subnet}"


def read_listen(entry_labels: dict[str, str]) -> Listen | None:
    parts = (entry_labels.get(labels.INGRESS_LISTEN) or "").split("|")
    if len(parts) != 5:
        return None
    host, port, gateway, admin, subnet = parts
    try:
        return Listen(host, int(port), gateway, int(admin) if admin else None, subnet)
    except ValueError:
        return None


def _address(host: str, port: int) -> str:
    """HAProxy's `address:port` (an IPv6 address takes the last colon as the port's)."""
    return f"{host}:{port}"


def _family(host: str) -> str:
    try:
        return "ipv6@" if ipaddress.ip_address(host).version == 6 else "ipv4@"
    except ValueError:
        return ""  # a host name: HAProxy resolves it


def host_binds(text: str, listen: Listen, publish_host: str, secret: str = "") -> str:
    """`text` with the ingress bound to http host:port, the router to the gateway (for the
    subnet's callers alone, stamping what it carries with `secret`) and the runtime API to
    publish_host:admin_port, each where the text has it (EngineError if twice)."""
    admin = f"{_family(publish_host)}{_address(publish_host, listen.admin_port or 0)}"
    router = f"    bind {_address(listen.gateway, containers.ROUTER_PORT)}\n"
    if listen.subnet:
        router += (
            f"    tcp-request connection reject if !{{ src {listen.subnet} }} "
            f"|| {{ src {listen.gateway} }}\n"
        )
    if secret:  # the stamp a replica trusts a pickle from the gateway by (router_secret.py)
        router += (
            f"    http-request return status 200 content-type text/plain string {secret} "
            f"if {{ path {SECRET_PATH} }}\n"
            f"    http-request set-header {SECRET_HEADER} {secret}\n"
        )
    ingress = f"    bind {_address(listen.http_host, listen.http_port)}\n"
    if secret:  # the stamp is the router's alone: a client's is dropped
        ingress += f"    http-request del-header {SECRET_HEADER}\n"
    moves = (
        # No SO_REUSEPORT: in the host's network any process of HAProxy's user could bind the
        # same ports beside it and take a share of the connections. A reload still binds
        # nothing twice: the master hands the listeners over (`expose-fd listeners`).
        (_MASTER_WORKER, f"{_MASTER_WORKER}    noreuseport\n"),
        (_INGRESS_BIND, ingress),
        (_ROUTER_BIND, router),
        (_ADMIN_BIND, f"    stats socket {admin} level admin\n"),
    )
    for old, new in moves:
        if text.count(old) > 1:
            raise EngineError(f"the ingress config has {old.strip()!r} twice")
        text = text.replace(old, new)
    return text


def pick_port(host: str) -> int:
    """A TCP port free on `host` now (the kernel's choice), or, where this machine has no such
    address (a remote engine), one from the ephemeral range at random."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])
    except OSError:
        return random.randint(32768, 60999)
