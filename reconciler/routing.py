"""The ingress: an HAProxy 2.6 configuration rendered from the config and the routable replicas.
Pure: no I/O, standard library only.

Two frontends: the HTTP ingress on INGRESS_PORT routes each application's `route_prefix`
(longest prefix first) to its ingress deployment; the router on ROUTER_PORT carries handle calls
between deployments (`/-/call/<app>/<deployment>/...`). One backend per deployment. The text is
deterministic, so an unchanged state renders an identical file and the engine can skip a reload.

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

from reconciler.model import (
    INGRESS_VERSION_PATH,
    INGRESS_VERSION_TOKEN,
    ApplicationSpec,
    DeploymentSpec,
    ObservedReplica,
    ServeConfig,
    short_hash,
)

INGRESS_PORT = 8000
ROUTER_PORT = 8001
REPLICA_PORT = 8000  # what a replica listens on inside its container
READY_PATH = "/-/ready"
HEALTHZ_PATH = "/-/healthz"  # the ingress itself is alive (for a container health check)
ROUTES_PATH = "/-/routes"  # Serve's proxy endpoint: {route_prefix: application}
CALL_PREFIX = "/-/call"
MODEL_ID_HEADER = "serve_multiplexed_model_id"  # Serve's header naming a multiplexed model
ROUTE_PREFIX_HEADER = "x-serve-route-prefix"  # the replica serves its ASGI app under it
STATS_SOCKET = "/tmp/haproxy.sock"  # HAProxy's runtime API (in /tmp: the ingress runs as nobody)
DEFAULT_SERVER_TIMEOUT_S = 60.0
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
    """The container name in HAProxy's alphabet, so logs and the runtime API name the replica."""
    return _SAFE_NAME.sub("_", replica.name) or f"replica-{replica.index}"


def _address(replica: ObservedReplica) -> str | None:
    if replica.network_ip is None:
        return None
    try:
        ip = ipaddress.ip_address(replica.network_ip)
    except ValueError:
        return None  # never write an unchecked string where HAProxy expects an address
    return f"{ip}:{REPLICA_PORT}"


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


def _global(config: ServeConfig) -> list[str]:
    timeout = config.http.request_timeout_s or DEFAULT_SERVER_TIMEOUT_S
    return [
        "global",
        "    master-worker",
        "    log stdout format raw local0 notice",
        # No global maxconn: HAProxy derives it from the file-descriptor limit it finds, and a
        # fixed value fails to start where that limit is lower.
        f"    stats socket {STATS_SOCKET} mode 600 level admin expose-fd listeners",
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        "    option forwardfor",
        # One request per server connection: a replica out of rotation gets no new request on a
        # kept-alive connection, and a refused connection is safe to retry elsewhere.
        "    option http-server-close",
        "    retries 3",
        "    retry-on conn-failure",
        "    option redispatch 1",
        "    timeout connect 3s",
        "    timeout client 60s",
        "    timeout http-request 15s",
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


def _servers(spec: DeploymentSpec, replicas: Sequence[ObservedReplica]) -> list[str]:
    lines, used = [], set()
    for replica in sorted(replicas, key=lambda r: (r.index, r.name, r.container_id)):
        address = _address(replica)
        name = server_name(replica)
        if address is None or name in used:
            continue
        used.add(name)
        lines.append(
            f"    server {name} {address} check inter 2s fall 2 rise 1 "
            f"maxconn {spec.max_ongoing_requests}"
        )
    return lines


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


def _deployment_backend(
    spec: DeploymentSpec, replicas: Sequence[ObservedReplica], prefix: str | None = None
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
        f"    option httpchk GET {READY_PATH}",
        # HAProxy's own 503 (no server up), with our body. Not `http-request return ... if
        # { nbsrv lt 1 }`: right after a reload `nbsrv` reads 0 for a moment although every
        # server is up, which failed about 1 request in 300 during rolling updates.
        f"    http-error status 503 content-type application/json string {hq(unavailable)}",
        *_servers(spec, replicas),
    ]


def render_haproxy(
    config: ServeConfig, replicas: Sequence[ObservedReplica], routable: frozenset[str]
) -> str:
    """The complete HAProxy configuration for this config and these routable replicas."""
    specs = sorted(config.deployments(), key=lambda s: s.key)
    by_key: dict[tuple[str, str], list[ObservedReplica]] = {}
    for replica in replicas:
        if replica.container_id in routable:
            by_key.setdefault(replica.key, []).append(replica)
    routes = _routes(config)
    prefixes = {(r.app.name, r.app.ingress): r.prefix for r in routes}
    sections = [
        _global(config),
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
            _deployment_backend(spec, by_key.get(spec.key, []), prefixes.get(spec.key))
            for spec in specs
        ),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"
