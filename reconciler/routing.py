"""The ingress: an HAProxy 2.6 configuration rendered from the config and the routable replicas.
Pure: no I/O, standard library only.

Two frontends: the HTTP ingress on INGRESS_PORT routes each application's `route_prefix`
(longest prefix first) to its ingress deployment; the router on ROUTER_PORT carries handle calls
between deployments (`/-/call/<app>/<deployment>/...`). One backend per deployment, one server
per routable replica. The text is deterministic, so an unchanged state renders an identical file
and the engine can skip a reload; `render_ingress` also gives the text without its servers (the
skeleton) and the servers as values, so an engine can follow a change of servers alone through
HAProxy's runtime API instead of a reload.

Connections to the replicas are kept alive and reused (`http-reuse`), balanced by least
connections; a request whose connection could not be made is retried on another replica
(`retry-on conn-failure`, `redispatch`), never one that reached a replica. A server leaves
rotation through the runtime API (`set server ... state drain`): no new request reaches it on
any connection, reused or not, so nothing needs a connection per request.

Nothing the user wrote reaches the file raw: paths are percent-encoded to a safe alphabet, names
become hashes in section names, and every other string is a quoted, escaped HAProxy word.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from reconciler import naming
from reconciler.model import (
    INGRESS_VERSION_PATH,
    INGRESS_VERSION_TOKEN,
    ApplicationSpec,
    DeploymentSpec,
    IngressConfig,
    IngressServer,
    ObservedReplica,
    ServeConfig,
    short_hash,
)
from reconciler.settings import DEFAULT_REQUEST_TIMEOUT_S

INGRESS_PORT = 8000
ROUTER_PORT = 8001
REPLICA_PORT = 8000  # what a replica listens on inside its container
READY_PATH = "/-/ready"
HEALTHZ_PATH = "/-/healthz"  # the ingress itself is alive (for a container health check)
ROUTES_PATH = "/-/routes"  # Serve's proxy endpoint: {route_prefix: application}
CALL_PREFIX = "/-/call"
CONTROL_PREFIX = "/-/"  # Serve's reserved paths: the proxy's own, and here the replicas' control
MODEL_ID_HEADER = "serve_multiplexed_model_id"  # Serve's header naming a multiplexed model
ROUTE_PREFIX_HEADER = "x-serve-route-prefix"  # the replica serves its ASGI app under it
ADMIN_PORT = 8404  # HAProxy's runtime API over TCP, published on the engine's --publish-host
STATS_SOCKET = "/tmp/haproxy.sock"  # the same as a unix socket (in /tmp: the ingress is nobody)
INGRESS_DIR = "/etc/haproxy"  # where the config and the files it names are written
WAIT_LUA = "serve_wait.lua"
# Keep-alive to the replicas: reuse any idle connection, also for a client's first request.
# Measured (bench/RESULTS.md): `safe` opens a connection per request for clients that open one
# per request, and `always` is safe here because a replica never closes an idle connection.
HTTP_REUSE = "always"
DEFAULT_SERVER_TIMEOUT_S = DEFAULT_REQUEST_TIMEOUT_S
NO_ROUTE_BACKEND = "no_route"
NO_DEPLOYMENT_BACKEND = "no_deployment"

_SAFE_PATH = re.compile(r"[A-Za-z0-9/_.~%-]*")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
# HAProxy's weak quoting (configuration.txt 2.2): backslash escapes, `$` starts a variable.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "'": "\\'", "$": "\\$", "#": "\\#"}


def hq(text: str) -> str:
    """`text` as one double-quoted HAProxy word, whatever it contains."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable() and ch.isascii():
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def url_path(path: str) -> str:
    """A path percent-encoded to [A-Za-z0-9/_.~%-], safe as a bare HAProxy word; a request for
    this path matches it in the form the client sends (HAProxy matches the raw path)."""
    encoded = quote(path, safe="/")
    assert _SAFE_PATH.fullmatch(encoded), encoded
    return encoded


def backend_name(app: str, deployment: str) -> str:
    return f"be_{short_hash(app, deployment)}"


def server_name(replica: ObservedReplica) -> str:
    """The container's name and id in HAProxy's alphabet (`naming.server_name`), so logs and the
    runtime API name the replica, and its server keeps its name when a drain renames it."""
    return naming.server_name(replica.name, replica.container_id)


def _ip(replica: ObservedReplica) -> str | None:
    if replica.network_ip is None:
        return None
    try:
        return str(ipaddress.ip_address(replica.network_ip))
    except ValueError:
        return None  # never write an unchecked string where HAProxy expects an address


def _seconds(value: float) -> str:
    return f"{max(1, round(value * 1000))}ms"


def _full_prefix(root_path: str, route_prefix: str) -> str:
    """`root_path` mounted before `route_prefix`; "" means everything."""
    root = root_path.rstrip("/")
    prefix = route_prefix.rstrip("/")
    return root + prefix


@dataclass(frozen=True)
class _Route:
    prefix: str  # "" matches every path
    app: ApplicationSpec
    backend: str


def _routes(config: ServeConfig) -> list[_Route]:
    """The HTTP routes, longest prefix first (HAProxy takes the first `use_backend` that fits)."""
    routes = []
    for app in config.applications:
        if app.route_prefix is None or app.deployment(app.ingress) is None:
            continue
        prefix = _full_prefix(config.http.root_path, app.route_prefix)
        routes.append(_Route(prefix, app, backend_name(app.name, app.ingress)))
    return sorted(routes, key=lambda r: (-len(r.prefix), r.prefix, r.app.name))


def ingress_threads(cores: float | None) -> int | None:
    """HAProxy's threads for a host of `cores` (None: HAProxy's default, one per CPU). One per
    four cores: the replicas need the CPU more (a Python replica serves a few thousand requests
    a second, one HAProxy thread tens of thousands), and on 2 cores one thread spent 22-25 us a
    request against 29-32 us for two (bench/RESULTS.md)."""
    return None if cores is None else max(1, min(16, int(cores // 4)))


def _global(config: ServeConfig, lua: bool, threads: int | None) -> list[str]:
    timeout = config.http.request_timeout_s or DEFAULT_SERVER_TIMEOUT_S
    return [
        "global",
        "    master-worker",
        *([f"    nbthread {threads}"] if threads else []),
        "    log stdout format raw local0 notice",
        # No global maxconn: HAProxy derives it from the file-descriptor limit it finds, and a
        # fixed value fails to start where that limit is lower.
        f"    stats socket {STATS_SOCKET} mode 600 level admin expose-fd listeners",
        f"    stats socket ipv4@0.0.0.0:{ADMIN_PORT} level admin",
        *([f"    lua-load {INGRESS_DIR}/{WAIT_LUA}"] if lua else []),
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    option forwardfor",
        # Send each piece as soon as it is there: a streamed response's chunks reach the client
        # as the replica writes them, and small answers do not wait on TCP's coalescing.
        "    option http-no-delay",
        f"    http-reuse {HTTP_REUSE}",
        # Only a connection that could not be made is retried (elsewhere: redispatch): a
        # request that reached a replica may have started there.
        "    retries 3",
        "    retry-on conn-failure",
        "    option redispatch 1",
        "    timeout connect 3s",
        "    timeout client 60s",
        "    timeout http-request 15s",
        # Idle client connections close after 5 s; idle server connections are purged after
        # pool-purge-delay (5 s). A replica never closes an idle connection itself, so HAProxy
        # never sends a request on a connection the replica is closing.
        "    timeout http-keep-alive 5s",
        f"    timeout queue {_seconds(timeout)}",
        f"    timeout server {_seconds(timeout)}",
    ]


def _routes_body(routes: Sequence[_Route]) -> str:
    return json.dumps({r.prefix or "/": r.app.name for r in routes}, sort_keys=True)


def _ingress_frontend(routes: Sequence[_Route]) -> list[str]:
    lines = [
        "frontend ingress",
        f"    bind :{INGRESS_PORT}",
        f"    monitor-uri {HEALTHZ_PATH}",
        f"    http-request return status 200 content-type application/json "
        f"string {hq(_routes_body(routes))} if {{ path {ROUTES_PATH} }}",
        f"    http-request return status 200 content-type text/plain "
        f"string {INGRESS_VERSION_TOKEN} if {{ path {INGRESS_VERSION_PATH} }}",
        # A replica's control endpoints (/-/call, /-/reconfigure, /-/state...) share its port
        # with the application: an application at "/" would hand them to any client.
        f"    use_backend {NO_ROUTE_BACKEND} if {{ path_beg {CONTROL_PREFIX} }}",
    ]
    for route in routes:
        if not route.prefix:
            lines.append(f"    use_backend {route.backend}")
            continue
        p = url_path(route.prefix)
        lines.append(f"    use_backend {route.backend} if {{ path {p} }} || {{ path_beg {p}/ }}")
    lines.append(f"    default_backend {NO_ROUTE_BACKEND}")
    return lines


def _router_frontend(specs: Iterable[DeploymentSpec]) -> list[str]:
    lines = ["frontend router", f"    bind :{ROUTER_PORT}"]
    for spec in specs:
        path = f"{CALL_PREFIX}/{quote(spec.app, safe='')}/{quote(spec.name, safe='')}/"
        lines.append(f"    use_backend {backend_name(*spec.key)} if {{ path_beg {path} }}")
    lines.append(f"    default_backend {NO_DEPLOYMENT_BACKEND}")
    return lines


def _error_backend(name: str, status: int, body_format: str) -> list[str]:
    return [
        f"backend {name}",
        f"    http-request return status {status} content-type application/json "
        f"lf-string {hq(body_format)}",
    ]


def server_options(spec: DeploymentSpec) -> tuple[str, ...]:
    """The keywords of a replica's server line (the same for HAProxy's `add server`).

    `pool-max-conn` and `pool-purge-delay` keep idle connections to the replica for reuse:
    HAProxy 2.6 gives a server created through its runtime API neither (no pool, idle
    connections purged at once; a server of the file gets an unlimited pool kept 5 s), so
    every request to a replica added at runtime opened a connection of its own (measured: 5
    requests, 5 connects, 0 reuses; with both keywords 1 connect, 4 reuses; either alone
    changes nothing). maxconn bounds the connections in use, so the pool needs no more."""
    limit = str(spec.max_ongoing_requests)
    return ("check", "inter", "2s", "fall", "2", "rise", "1", "maxconn", limit,
            "pool-max-conn", limit, "pool-purge-delay", "5s")  # fmt: skip


def servers(spec: DeploymentSpec, replicas: Sequence[ObservedReplica]) -> list[IngressServer]:
    """The servers of one deployment's backend, in index order; a replica without a usable
    address is left out."""
    backend, options = backend_name(*spec.key), server_options(spec)
    out, used = [], set()
    for replica in sorted(replicas, key=lambda r: (r.index, r.name, r.container_id)):
        ip, name = _ip(replica), server_name(replica)
        if ip is None or name in used:
            continue
        used.add(name)
        out.append(IngressServer(backend, name, ip, REPLICA_PORT, options, replica.container_id))
    return out


def server_line(server: IngressServer) -> str:
    ip = f"[{server.address}]" if ":" in server.address else server.address
    return f"    server {server.name} {ip}:{server.port} {' '.join(server.options)}".rstrip()


def _balance(spec: DeploymentSpec) -> list[str]:
    """A multiplexed deployment gets the requests for one model id on one replica (consistent
    hashing keeps most ids in place when replicas come and go); requests without the header
    are balanced round robin, as HAProxy does when the hashed header is missing."""
    if spec.multiplexed:
        return [f"    balance hdr({MODEL_ID_HEADER})", "    hash-type consistent"]
    return ["    balance leastconn"]


def _prefix_header(prefix: str | None) -> list[str]:
    """Tells the ingress deployment its full route prefix: Serve gives the ASGI app that as
    `root_path`, and HAProxy forwards the full path. Set, never passed on from the client."""
    if not prefix:
        return []
    # a log-format string: percent-encoded bytes need their '%' doubled
    value = url_path(prefix).replace("%", "%%")
    return [f"    http-request set-header {ROUTE_PREFIX_HEADER} {value}"]


def _may_scale_to_zero(spec: DeploymentSpec) -> bool:
    auto = spec.autoscaling_config
    return auto is not None and auto.min_replicas == 0


def _wait_for_replica(spec: DeploymentSpec, config: ServeConfig) -> list[str]:
    """A deployment that autoscales from zero: a request that finds no server waits here (the
    Lua action of WAIT_LUA, while the autoscaler, which counts it in the backend's sessions,
    starts a replica) up to the request timeout, then gets a 503 that says so."""
    if not _may_scale_to_zero(spec):
        return []
    timeout = config.http.request_timeout_s or DEFAULT_SERVER_TIMEOUT_S
    waited = json.dumps(
        {
            "error": f"no replica of deployment '{spec.name}' in application '{spec.app}' "
            f"became available within {timeout:g}s (it was scaled to zero and is starting)"
        }
    )
    return [
        f"    http-request lua.serve_wait_for_server {max(1, round(timeout * 1000))} "
        "if { nbsrv lt 1 }",
        f"    http-request return status 503 content-type application/json string {hq(waited)} "
        "if { var(txn.serve_wait) -m str timeout }",
    ]


def _deployment_backend(
    spec: DeploymentSpec,
    config: ServeConfig,
    members: Sequence[IngressServer],
    prefix: str | None = None,
) -> list[str]:
    unavailable = json.dumps(
        {"error": f"no healthy replica of deployment '{spec.name}' in application '{spec.app}'"}
    )
    label = "/".join(_SAFE_NAME.sub("?", name) for name in spec.key)
    return [
        f"backend {backend_name(*spec.key)}",
        f"    # {label}",
        *_balance(spec),
        *_prefix_header(prefix),
        *_wait_for_replica(spec, config),
        f"    option httpchk GET {READY_PATH}",
        # HAProxy's own 503 (no server up), with our body. Not `http-request return ... if
        # { nbsrv lt 1 }`: right after a reload `nbsrv` reads 0 for a moment although every
        # server is up, which failed about 1 request in 300 during rolling updates.
        f"    http-error status 503 content-type application/json string {hq(unavailable)}",
        *(server_line(s) for s in members),
    ]


def render_ingress(
    config: ServeConfig,
    replicas: Sequence[ObservedReplica],
    routable: frozenset[str],
    *,
    threads: int | None = None,
) -> IngressConfig:
    """The ingress for this config and these routable replicas: the whole configuration, the
    same without servers, the servers, and the Lua file when a deployment may wait at zero.
    `threads`: HAProxy's (see `ingress_threads`)."""
    specs = sorted(config.deployments(), key=lambda s: s.key)
    by_key: dict[tuple[str, str], list[ObservedReplica]] = {}
    for replica in replicas:
        if replica.container_id in routable:
            by_key.setdefault(replica.key, []).append(replica)
    members = {spec.key: servers(spec, by_key.get(spec.key, [])) for spec in specs}
    lua = any(_may_scale_to_zero(spec) for spec in specs)

    def text(with_servers: bool) -> str:
        return _render(config, specs, members if with_servers else {}, lua, threads)

    return IngressConfig(
        text=text(True),
        skeleton=text(False),
        servers=tuple(s for spec in specs for s in members[spec.key]),
        files=((WAIT_LUA, WAIT_FOR_SERVER_LUA),) if lua else (),
        backends=tuple(backend_name(*spec.key) for spec in specs),
    )


def render_haproxy(
    config: ServeConfig, replicas: Sequence[ObservedReplica], routable: frozenset[str]
) -> str:
    """The complete HAProxy configuration for this config and these routable replicas."""
    return render_ingress(config, replicas, routable).text


def _render(
    config: ServeConfig,
    specs: Sequence[DeploymentSpec],
    members: dict[tuple[str, str], list[IngressServer]],
    lua: bool,
    threads: int | None,
) -> str:
    routes = _routes(config)
    prefixes = {(r.app.name, r.app.ingress): r.prefix for r in routes}
    sections = [
        _global(config, lua, threads),
        _ingress_frontend(routes),
        _router_frontend(specs),
        _error_backend(
            NO_ROUTE_BACKEND,
            404,
            '{"error": "no application at this path", "path": "%[path,json(utf8s)]"}',
        ),
        _error_backend(
            NO_DEPLOYMENT_BACKEND,
            404,
            '{"error": "no deployment at this path", "path": "%[path,json(utf8s)]"}',
        ),
        *(
            _deployment_backend(spec, config, members.get(spec.key, []), prefixes.get(spec.key))
            for spec in specs
        ),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


# The Lua action of `_wait_for_replica`: hold the request while its backend has no usable
# server, checking every 20 ms, up to the timeout given in milliseconds; then say so in a
# variable the next rule answers 503 on. A request held here counts in the backend's sessions.
WAIT_FOR_SERVER_LUA = """\
-- written by serve-reconciler: requests wait here while their backend scales from zero
core.register_action("serve_wait_for_server", {"http-req"}, function(txn, timeout_ms)
  local left = tonumber(timeout_ms) or 0
  while txn.f:nbsrv() < 1 do
    if left <= 0 then
      txn:set_var("txn.serve_wait", "timeout")
      return
    end
    core.msleep(20)
    left = left - 20
  end
end, 1)
"""
