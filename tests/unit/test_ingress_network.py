"""Where a single host's ingress listens (runtime/ingress_network.py): the binds moved into the
host's network, what an ingress container is made with on either network, and when an existing
one is kept. `haproxy -c` checks each moved text."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_routing import app_config, haproxy_check, lines_of, serving

from reconciler import routing
from reconciler.errors import EngineError
from reconciler.model import HttpOptions
from reconciler.runtime import labels
from reconciler.runtime.containers import Bridge, bridge_of
from reconciler.runtime.ingress_network import (
    BridgeNetwork,
    HostNetwork,
    Listen,
    choose,
    host_binds,
    listen_label,
    network_of,
    pick_port,
    read_listen,
)

BRIDGE = Bridge("10.0.0.1", "10.0.0.0/24")


def _text() -> str:
    cfg = app_config(("fruit", "/fruit", 2))
    replicas = serving(cfg)
    return routing.render_ingress(cfg, replicas, frozenset(r.container_id for r in replicas)).text


def test_host_binds_moves_each_listener_where_the_host_has_it(tmp_path: Path) -> None:
    text = _text()
    listen = Listen("127.0.0.1", 18080, "127.0.0.1", 18404, "127.0.0.0/8")
    moved = host_binds(text, listen, "127.0.0.1")
    assert "bind 127.0.0.1:18080" in lines_of(moved, "frontend ingress")
    router = lines_of(moved, "frontend router")
    assert router[:2] == [
        "bind 127.0.0.1:8001",
        # the router is a host address: only the instance's replicas may call it
        "tcp-request connection reject if !{ src 127.0.0.0/8 } || { src 127.0.0.1 }",
    ]
    assert "    stats socket ipv4@127.0.0.1:18404 level admin\n" in moved
    assert moved.startswith("global\n    master-worker\n    noreuseport\n")
    assert f":{routing.ADMIN_PORT}" not in moved and "bind :" not in moved
    # With the router's secret: told on its path, stamped on every call it carries.
    stamped = lines_of(host_binds(text, listen, "127.0.0.1", "s3cr3t"), "frontend router")
    assert stamped[2:4] == [
        "http-request return status 200 content-type text/plain string s3cr3t "
        "if { path /-/router-secret }",
        "http-request set-header X-Serve-Router s3cr3t",
    ]
    assert HostNetwork().secret != HostNetwork().secret and len(HostNetwork().secret) >= 32
    # A restarted reconciler keeps the running ingress's secret.
    restarted = HostNetwork()
    restarted.adopt(lambda: host_binds(text, listen, "127.0.0.1", "kept-secret-0123456789"))
    assert restarted.secret == "kept-secret-0123456789"
    before = restarted.secret
    restarted.adopt(lambda: text)  # nothing to keep: unchanged
    assert restarted.secret == before
    # Nothing else changes: the servers, the backends and the unix socket stay as rendered.
    added = {"noreuseport", router[1]}
    kept = [line for line in moved.splitlines() if line.strip() not in added]
    changed = [a for a, b in zip(text.splitlines(), kept, strict=True) if a != b]
    assert len(changed) == 3, changed
    haproxy_check(moved.replace(routing.INGRESS_DIR, str(tmp_path)), tmp_path)


def test_host_binds_an_ipv6_wildcard_and_refuses_a_doubled_bind(tmp_path: Path) -> None:
    moved = host_binds(_text(), Listen("::", 18080, "10.9.0.1", 18404, "10.9.0.0/16"), "::1")
    assert "bind :::18080" in lines_of(moved, "frontend ingress")
    assert "    stats socket ipv6@::1:18404 level admin\n" in moved
    with pytest.raises(EngineError, match="twice"):
        host_binds(_text() + "frontend again\n    bind :8000\n", Listen("", 1, "g", 2), "h")


def test_the_listen_label_round_trips_and_a_bad_one_reads_as_none() -> None:
    listen = Listen("0.0.0.0", 8000, "172.18.0.1", 40123, "172.18.0.0/16")
    assert read_listen({labels.INGRESS_LISTEN: listen_label(listen)}) == listen
    assert read_listen({}) is None
    assert read_listen({labels.INGRESS_LISTEN: "0.0.0.0|x|g|1|s"}) is None
    assert read_listen({labels.INGRESS_LISTEN: "a|b"}) is None


def test_a_host_network_ingress_runs_as_nobody_unless_its_port_is_privileged() -> None:
    net = HostNetwork()
    args = net.create_args("net", HttpOptions(host="0.0.0.0", port=8000), "127.0.0.1", BRIDGE)
    host = args["host_config"]
    assert host["network_mode"] == "host" and host["cap_drop"] == ["ALL"]
    assert "cap_add" not in host and "port_bindings" not in host
    assert args["user"] == "65534:65534" and args["ports"] == []
    listen = read_listen(args["labels"])
    assert listen is not None and (listen.http_host, listen.http_port) == ("0.0.0.0", 8000)
    assert (listen.gateway, listen.subnet) == ("10.0.0.1", "10.0.0.0/24") and listen.admin_port

    low = net.create_args("net", HttpOptions(host="0.0.0.0", port=80), "127.0.0.1", BRIDGE)
    assert low["user"] == "0:0" and low["host_config"]["cap_add"] == ["NET_BIND_SERVICE"]
    with pytest.raises(EngineError, match="gateway"):
        net.create_args("net", HttpOptions(), "127.0.0.1", Bridge())


def test_an_existing_ingress_is_kept_only_where_it_listens_as_asked() -> None:
    http = HttpOptions(host="0.0.0.0", port=8000)
    made = HostNetwork().create_args("net", http, "127.0.0.1", BRIDGE)
    info = {"HostConfig": {"NetworkMode": "host"}, "Config": {"Labels": made["labels"]}}
    net = HostNetwork()
    assert net.serves(info, http, BRIDGE)
    assert not net.serves(info, HttpOptions(host="0.0.0.0", port=8001), BRIDGE)
    moved = Bridge("10.0.9.1", "10.0.9.0/24")
    assert not net.serves(info, http, moved)  # the network was made again elsewhere
    bridged = {
        "HostConfig": {
            "NetworkMode": "net",
            "PortBindings": {"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8000"}]},
        },
        "Config": {"Labels": {}},
    }
    assert not net.serves(bridged, http, BRIDGE)  # made on the bridge: made again
    assert BridgeNetwork().serves(bridged, http, BRIDGE)
    assert not BridgeNetwork().serves(info, http, BRIDGE)


def test_where_each_network_finds_the_runtime_api_and_names_the_ingress() -> None:
    listen = Listen("0.0.0.0", 8000, "10.0.0.1", 40123, "10.0.0.0/24")
    entry = {"Labels": {labels.INGRESS_LISTEN: listen_label(listen)}, "Ports": []}
    assert HostNetwork().admin_address("0.0.0.0", entry) == ("127.0.0.1", 40123)
    assert HostNetwork().admin_address("127.0.0.1", {"Labels": {}}) is None
    bridged = {"Ports": [{"PrivatePort": 8404, "PublicPort": 32001, "IP": "127.0.0.1"}]}
    assert BridgeNetwork().admin_address("127.0.0.1", bridged) == ("127.0.0.1", 32001)
    assert HostNetwork().replica_hosts("serve-x-ingress", "10.0.0.1") == {
        "serve-x-ingress": "10.0.0.1"
    }
    assert BridgeNetwork().replica_hosts("serve-x-ingress", "10.0.0.1") == {}
    assert BridgeNetwork().config_text("text", {}, "127.0.0.1") == "text"


def test_network_of_names_the_kinds_and_pick_port_finds_one() -> None:
    assert network_of("host").kind == "host" and network_of("bridge").kind == "bridge"
    with pytest.raises(ValueError, match="host, bridge"):
        network_of("overlay")
    assert 0 < pick_port("127.0.0.1") < 65536
    assert 32768 <= pick_port("203.0.113.7") <= 60999  # not an address of this machine


def test_auto_is_host_on_this_machine_unless_the_ingress_runs_on_the_bridge_already() -> None:
    on_host = {"HostConfig": {"NetworkMode": "host"}}
    on_bridge = {"HostConfig": {"NetworkMode": "serve-x"}}
    assert choose("auto", True, None) == "host"
    assert choose("auto", True, on_host) == "host"
    assert choose("auto", True, on_bridge) == "bridge"  # made before: moved only when asked
    assert choose("auto", False, None) == "bridge"  # a remote engine
    assert choose("host", False, on_bridge) == "host" and choose("bridge", True, None) == "bridge"


def test_bridge_of_reads_the_ipv4_pool_of_an_inspected_network() -> None:
    dual = {"IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"},
                                {"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}]}}  # fmt: skip
    assert bridge_of(dual) == Bridge("172.30.0.1", "172.30.0.0/16")
    assert bridge_of({"IPAM": {"Config": None}}) == Bridge()
