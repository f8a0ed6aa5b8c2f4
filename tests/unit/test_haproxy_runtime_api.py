"""The ingress's runtime API on the real HAProxy binary (no Docker): a rendered config served by
a local HAProxy in front of small local HTTP servers, its servers moved by
`ingress_servers.sync` through `HaproxyAdmin`, the loads read as the autoscaler's sampler reads
them, and a request held while its deployment is at zero."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from test_plan import config, rep, spec

from reconciler import routing
from reconciler.model import AutoscalingConfig, DeploymentSpec, HttpOptions, IngressServer
from reconciler.runtime import ingress_servers
from reconciler.runtime.haproxy_admin import SERVERS, AdminError, HaproxyAdmin
from reconciler.runtime.load_sampler import read_loads
from tests.support import free_port, wait_for

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
pytestmark = pytest.mark.skipif(not Path(HAPROXY).exists(), reason="needs the haproxy binary")


class Replica(BaseHTTPRequestHandler):
    """A replica stand-in on HTTP/1.1 keep-alive: answers its own port, after `?sleep=S`."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if "sleep=" in self.path:
            time.sleep(float(self.path.split("sleep=")[1]))
        body = json.dumps({"port": self.server.server_address[1]}).encode()  # type: ignore[index]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Ingress:
    admin: HaproxyAdmin
    url: str
    backend: str
    spec: DeploymentSpec
    servers: dict[int, IngressServer]  # by index: what sync may be given


def _replicas(n: int) -> Iterator[ThreadingHTTPServer]:
    for _ in range(n):
        server = ThreadingHTTPServer(("127.0.0.1", free_port()), Replica)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield server


def _start(tmp: Path, s: DeploymentSpec, timeout_s: float | None = None) -> tuple[Ingress, Any]:
    cfg = config(s)
    cfg = replace(cfg, http=HttpOptions(request_timeout_s=timeout_s))
    rendered = routing.render_ingress(cfg, [], frozenset())
    port, admin_port = free_port(), free_port()
    text = (
        rendered.text.replace("bind :8000", f"bind 127.0.0.1:{port}")
        .replace("bind :8001", f"bind 127.0.0.1:{free_port()}")
        .replace(routing.STATS_SOCKET, str(tmp / "haproxy.sock"))
        .replace(f"ipv4@0.0.0.0:{routing.ADMIN_PORT}", f"ipv4@127.0.0.1:{admin_port}")
        .replace(routing.INGRESS_DIR, str(tmp))
    )
    for name, content in rendered.files:
        (tmp / name).write_text(content)
    (tmp / "haproxy.cfg").write_text(text)
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(tmp / "haproxy.cfg")])
    admin = HaproxyAdmin(("127.0.0.1", admin_port))
    wait_for(lambda: admin.show_info(), timeout=10, what="haproxy to start")
    backends = list(_replicas(3))
    servers = {
        i: replace(server, port=backends[i].server_address[1])
        for i, server in enumerate(
            routing.servers(s, [rep(s, i, network_ip="127.0.0.1") for i in range(3)])
        )
    }
    backend = routing.backend_name(*s.key)
    prefix = f"/{s.app}"
    return Ingress(admin, f"http://127.0.0.1:{port}{prefix}", backend, s, servers), (
        proc,
        backends,
    )


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    running: list[Any] = []

    def make(s: DeploymentSpec, timeout_s: float | None = None) -> Ingress:
        ingress, parts = _start(tmp_path, s, timeout_s)
        running.append(parts)
        return ingress

    yield make
    for proc, backends in running:
        proc.terminate()
        proc.wait(10)
        for b in backends:
            b.shutdown()


def _ports(session: requests.Session, url: str, n: int) -> list[int]:
    return [session.get(url, timeout=10).json()["port"] for _ in range(n)]


def test_servers_come_and_go_without_a_reload_and_a_drained_one_gets_nothing(start: Any) -> None:
    ing = start(spec("Api", app="shop", n=2, is_ingress=True, route_prefix="/shop"))
    s0, s1 = ing.servers[0], ing.servers[1]
    result = ingress_servers.sync(ing.admin, [s0], [ing.backend])
    assert (result.added, result.drained) == (1, 0)
    session = requests.Session()  # one kept-alive client connection throughout
    assert set(_ports(session, ing.url, 5)) == {s0.port}
    ingress_servers.sync(ing.admin, [s0, s1], [ing.backend])
    assert set(_ports(session, ing.url, 40)) == {s0.port, s1.port}
    # s0 leaves rotation: not one more request reaches it, on the reused connections either
    result = ingress_servers.sync(ing.admin, [s1], [ing.backend])
    assert result.drained == 1 and result.deleted == 1  # idle: deleted at once
    assert set(_ports(session, ing.url, 100)) == {s1.port}
    names = {s.name for s in ing.admin.show_servers_state(ing.backend)}
    assert names == {s1.name}
    assert int(ing.admin.show_info()["Uptime_sec"]) >= 0  # the same process all along


def test_a_server_added_at_runtime_keeps_its_connections_for_reuse(start: Any) -> None:
    """HAProxy 2.6 gives a server made by `add server` no pool of idle connections unless its
    keywords ask for one (pool-max-conn, pool-purge-delay): without them, every request to a
    replica added at runtime opened a new connection to it (20 requests, 20 connects)."""
    ing = start(spec("Api", app="shop", n=1, is_ingress=True, route_prefix="/shop"))
    s0 = ing.servers[0]
    ingress_servers.sync(ing.admin, [s0], [ing.backend])
    assert set(_ports(requests.Session(), ing.url, 20)) == {s0.port}
    body = ing.admin.command(f"show stat -1 {SERVERS} -1").removeprefix("# ")
    (row,) = [r for r in csv.DictReader(io.StringIO(body)) if r["svname"] == s0.name]
    assert int(row["connect"]) <= 2 and int(row["reuse"]) >= 18, row


def test_a_busy_drained_server_stays_until_its_requests_end(start: Any) -> None:
    ing = start(spec("Api", app="shop", n=2, is_ingress=True, route_prefix="/shop"))
    s0, s1 = ing.servers[0], ing.servers[1]
    ingress_servers.sync(ing.admin, [s0], [ing.backend])
    slow = threading.Thread(target=lambda: requests.get(ing.url + "?sleep=2", timeout=10))
    slow.start()
    wait_for(lambda: ingress_servers.in_flight_by_server(ing.admin).get(s0.name) == 1,
             timeout=5, what="the slow request on s0")  # fmt: skip
    assert read_loads(ing.admin)[ing.backend] == 1  # what the autoscaler samples
    result = ingress_servers.sync(ing.admin, [s1], [ing.backend])
    assert (result.added, result.drained, result.deleted, result.leaving) == (1, 1, 0, 1)
    assert requests.get(ing.url, timeout=5).json()["port"] == s1.port
    slow.join(10)
    again = ingress_servers.sync(ing.admin, [s1], [ing.backend])
    assert (again.deleted, again.leaving) == (1, 0)


def test_refused_commands_say_what_haproxy_said(start: Any) -> None:
    ing = start(spec("Api", app="shop", n=1, is_ingress=True, route_prefix="/shop"))
    with pytest.raises(AdminError, match=r"refused `del server be_nope/x`: No such backend"):
        ing.admin.del_server("be_nope", "x")
    with pytest.raises(ValueError):
        ing.admin.set_server_state(ing.backend, "a;shutdown", "drain")


def test_a_request_at_zero_waits_for_a_replica_and_counts_as_load(start: Any) -> None:
    auto = AutoscalingConfig(min_replicas=0, max_replicas=2)
    ing = start(spec("Api", app="shop", n=0, is_ingress=True, route_prefix="/shop",
                     autoscaling_config=auto))  # fmt: skip
    answers: list[requests.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(requests.get(ing.url, timeout=30)))
    waiting.start()
    wait_for(lambda: read_loads(ing.admin).get(ing.backend) == 1, timeout=5,
             what="the waiting request counted")  # fmt: skip
    assert not answers  # held, not refused (HAProxy's own answer would be an instant 503)
    ingress_servers.sync(ing.admin, [ing.servers[0]], [ing.backend])
    waiting.join(10)
    assert answers[0].status_code == 200 and answers[0].json()["port"] == ing.servers[0].port


def test_a_request_waiting_past_the_timeout_gets_a_clear_503(start: Any) -> None:
    auto = AutoscalingConfig(min_replicas=0, max_replicas=2)
    ing = start(spec("Api", app="shop", n=0, is_ingress=True, route_prefix="/shop",
                     autoscaling_config=auto), timeout_s=1.0)  # fmt: skip
    t0 = time.monotonic()
    answer = requests.get(ing.url, timeout=10)
    assert answer.status_code == 503 and 0.9 <= time.monotonic() - t0 < 5
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "error": "no replica of deployment 'Api' in application 'shop' became available "
        "within 1s (it was scaled to zero and is starting)"
    }
