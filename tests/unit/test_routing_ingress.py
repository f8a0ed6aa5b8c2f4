"""The rendered ingress as values: the skeleton the engine compares to decide on a reload, the
servers it can move alone, keep-alive to the replicas, the scale-from-zero wait, threads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from test_plan import rep
from test_routing import app_config, haproxy_check, lines_of, serving

from reconciler import naming, routing
from reconciler.model import AutoscalingConfig, IngressConfig, ServeConfig


def _ingress(cfg: ServeConfig, threads: int | None = None) -> IngressConfig:
    replicas = serving(cfg)
    return routing.render_ingress(
        cfg, replicas, frozenset(r.container_id for r in replicas), threads=threads
    )


def _autoscaled(cfg: ServeConfig, low: int) -> ServeConfig:
    auto = AutoscalingConfig(min_replicas=low, max_replicas=4)
    app = cfg.applications[0]
    deployments = tuple(
        replace(d, autoscaling_config=auto) if d.name == "Ingress" else d for d in app.deployments
    )
    return replace(cfg, applications=(replace(app, deployments=deployments),))


def test_the_skeleton_is_the_text_without_its_servers() -> None:
    cfg = app_config(("fruit", "/fruit", 3))
    ingress = _ingress(cfg)
    server_lines = [line for line in ingress.text.splitlines() if line.startswith("    server ")]
    assert len(server_lines) == len(ingress.servers) == 4  # 3 Ingress + 1 Worker
    assert [line for line in ingress.text.splitlines() if line not in server_lines] == (
        ingress.skeleton.splitlines()
    )
    alone = _ingress(app_config(("fruit", "/fruit", 1)))
    assert alone.skeleton == ingress.skeleton  # scaling changes servers only: no reload
    assert ingress.backends == (
        routing.backend_name("fruit", "Ingress"),
        routing.backend_name("fruit", "Worker"),
    )


def test_servers_are_values_the_runtime_api_takes_as_they_are_written() -> None:
    cfg = app_config(("fruit", "/fruit", 1))
    (s, _) = cfg.deployments()
    replica = rep(s, 0, network_ip="10.1.2.3")
    (server,) = routing.servers(s, [replica])
    assert server.backend == routing.backend_name("fruit", "Ingress")
    assert (server.address, server.port, server.replica_id) == (
        "10.1.2.3",
        8000,
        replica.container_id,
    )
    options = "check inter 2s fall 2 rise 1 maxconn 5 pool-max-conn 5 pool-purge-delay 5s"
    assert server.options == tuple(options.split())
    assert routing.server_line(server) == f"    server {server.name} 10.1.2.3:8000 {options}"
    # a drain renames the container; its server keeps its name
    drained = replace(replica, name=naming.drain_name(replica.name, 123.0))
    assert routing.server_name(drained) == server.name


def test_server_names_carry_the_container_id() -> None:
    cid = "0123456789abcdef" * 4
    name = naming.server_name("serve-i-app-Dep-0--drain-170", cid)
    assert name == "serve-i-app-Dep-0_0123456789ab"
    assert naming.server_replica_id(name) == cid[:12]
    assert naming.server_replica_id("no-id-here") is None


def test_connections_to_replicas_are_kept_alive_and_retried_only_before_sending() -> None:
    text = _ingress(app_config(("fruit", "/fruit", 1))).text
    defaults = lines_of(text, "defaults")
    assert "option http-server-close" not in text
    assert f"http-reuse {routing.HTTP_REUSE}" in defaults and routing.HTTP_REUSE == "always"
    assert "retry-on conn-failure" in defaults and "option redispatch 1" in defaults
    assert "timeout http-keep-alive 5s" in defaults
    glob = lines_of("\n" + text, "global")
    assert f"stats socket ipv4@0.0.0.0:{routing.ADMIN_PORT} level admin" in glob


def test_threads_follow_the_host() -> None:
    assert routing.ingress_threads(None) is None
    assert [routing.ingress_threads(c) for c in (1, 2, 4, 8, 64, 256)] == [1, 1, 1, 2, 16, 16]
    text = _ingress(app_config(("fruit", "/fruit", 1)), threads=2).text
    assert "    nbthread 2" in text.split("\n\n")[0]
    assert "nbthread" not in _ingress(app_config(("fruit", "/fruit", 1))).text


def test_only_a_deployment_that_may_be_at_zero_waits_for_a_replica(tmp_path: Path) -> None:
    base = app_config(("fruit", "/fruit", 1))
    assert "lua" not in _ingress(_autoscaled(base, low=1)).text
    ingress = _ingress(_autoscaled(base, low=0))
    assert f"    lua-load {routing.INGRESS_DIR}/{routing.WAIT_LUA}" in ingress.text
    assert dict(ingress.files) == {routing.WAIT_LUA: routing.WAIT_FOR_SERVER_LUA}
    waiting = lines_of(ingress.text, f"backend {routing.backend_name('fruit', 'Ingress')}")
    assert "http-request lua.serve_wait_for_server 60000 if { nbsrv lt 1 }" in waiting
    worker = lines_of(ingress.text, f"backend {routing.backend_name('fruit', 'Worker')}")
    assert not any("lua" in line for line in worker)  # a fixed deployment answers 503 at once
    # the real binary loads the Lua and accepts the config
    (tmp_path / routing.WAIT_LUA).write_text(routing.WAIT_FOR_SERVER_LUA)
    haproxy_check(ingress.text.replace(routing.INGRESS_DIR, str(tmp_path)), tmp_path)
