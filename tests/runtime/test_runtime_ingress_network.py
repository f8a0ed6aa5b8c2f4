"""The single-host ingress on either network (runtime/ingress_network.py), on the real engine:
in the host's network it binds the config's port itself, says so when that port is taken, takes
router calls from the instance's replicas alone, and stamps them with the secret that lets a
pickle from the gateway in, which a caller on the host lacks; on the bridge it is a published
container as before."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from runtime_support import (
    BASE_IMAGE,
    free_port,
    http,
    make_spec,
    observe_until,
    try_http,
    wait_until,
)
from test_runtime_ingress import CFG, _deploy, _hand_written

from reconciler.errors import EngineError
from reconciler.model import CodeTree, HttpOptions, ReplicaState
from reconciler.runtime.docker_engine import DockerEngine

pytestmark = pytest.mark.docker

PICKLE = "application/x-serve-pickle"  # serve_replica.wire.PICKLE


def _engine(instance: str, client: Any, kind: str) -> DockerEngine:
    return DockerEngine(
        instance=instance, default_image=BASE_IMAGE, docker_client=client, ingress_network=kind
    )


@pytest.fixture
def host_engine(instance_name: str, docker_client: Any) -> Iterator[DockerEngine]:
    engine = _engine(instance_name, docker_client, "host")
    yield engine
    engine.remove_all()


def _serve(engine: DockerEngine, code: CodeTree, port: int) -> dict[str, Any]:
    replicas = _deploy(engine, code)
    text = CFG.format(
        market=replicas["Market"].network_ip, stand=replicas["Stand"].network_ip, generation=0
    )
    engine.apply_ingress(HttpOptions(host="127.0.0.1", port=port), _hand_written(text))
    return replicas


def test_on_the_host_network_only_the_routers_stamp_lets_a_pickle_in_from_the_host(
    host_engine: DockerEngine, code_tree: CodeTree, docker_client: Any
) -> None:
    port = free_port()
    replicas = _serve(host_engine, code_tree, port)
    info = docker_client.api.inspect_container(host_engine.ingress_name)
    assert info["HostConfig"]["NetworkMode"] == "host" and not info["HostConfig"]["PortBindings"]
    assert info["Config"]["User"] == "65534:65534" and not info["HostConfig"]["CapAdd"]
    # Market asks the Stand with a handle, through the router on the gateway: price 3 x 2.
    url = f"http://127.0.0.1:{port}/"
    wait_until(lambda: try_http(url, b'["MANGO", 2]') == (200, b"6"), 30, "a handle call")

    # The router listens on the gateway, a host address: the host itself (and any other
    # network's container) is turned away, the instance's replicas alone may call it.
    gateway = docker_client.api.inspect_network(host_engine.network_name)["IPAM"]["Config"][0]
    router = f"http://{gateway['Gateway']}:8001"
    assert try_http(router + "/-/call/default/Stand/check_price", b'{"args": [1]}') == (-1, b"")
    assert try_http(router + "/-/router-secret") == (-1, b"")

    # A pickled call straight from the host comes from the gateway too, as the router's do:
    # refused without the router's stamp (or with a wrong one), taken with it.
    stand = replicas["Stand"].control_url + "/-/call/default/Stand/check_price"
    body = pickle.dumps(((4,), {}))
    status, answer, _ = http(stand, body, {"Content-Type": PICKLE})
    assert status == 403 and b"only taken from inside the network" in answer
    secret = host_engine.listen_on().secret  # type: ignore[attr-defined]
    status, _, _ = http(stand, body, {"Content-Type": PICKLE, "X-Serve-Router": secret + "x"})
    assert status == 403
    status, answer, _ = http(stand, body, {"Content-Type": PICKLE, "X-Serve-Router": secret})
    assert status == 200 and pickle.loads(answer) == ("ok", 12)

    # A restarted reconciler (a new engine) keeps the running ingress's secret.
    again = _engine(host_engine._instance, docker_client, "host")
    text = CFG.format(
        market=replicas["Market"].network_ip, stand=replicas["Stand"].network_ip, generation=1
    )
    again.apply_ingress(HttpOptions(host="127.0.0.1", port=port), _hand_written(text))
    assert again.listen_on().secret == secret  # type: ignore[attr-defined]
    assert try_http(url, b'["MANGO", 2]') == (200, b"6")


def test_a_taken_port_is_said_at_once_and_the_replicas_keep_running(
    host_engine: DockerEngine, code_tree: CodeTree
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(EngineError, match=r"stopped as it started: .*cannot bind socket"):
            _serve(host_engine, code_tree, port)
    running = observe_until(host_engine, lambda rs: len(rs) == 2)
    assert all(r.state is ReplicaState.RUNNING for r in running)


def test_on_the_bridge_the_ingress_is_a_published_container(
    instance_name: str, docker_client: Any, code_tree: CodeTree
) -> None:
    engine = _engine(instance_name, docker_client, "bridge")
    try:
        port = free_port()
        _serve(engine, code_tree, port)
        info = docker_client.api.inspect_container(engine.ingress_name)
        assert info["HostConfig"]["NetworkMode"] == engine.network_name
        bound = info["HostConfig"]["PortBindings"]["8000/tcp"]
        assert bound == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: try_http(url, b'["PEAR", 5]') == (200, b"15"), 30, "a handle call")
    finally:
        engine.remove_all()


def test_a_replica_made_for_the_other_router_reads_as_another_version(
    instance_name: str, docker_client: Any, code_tree: CodeTree
) -> None:
    """Made while the ingress was on the bridge (or by a reconciler before the label), a replica
    finds the router by the ingress container's name, which an ingress on the host's network
    does not have: the engine that now puts it there sees another version, so the planner
    replaces the replica in a rolling update instead of leaving its handle calls to fail."""
    bridge = _engine(instance_name, docker_client, "bridge")
    spec = make_spec(code_tree)
    bridge.start_replica(spec, 0)
    (seen,) = observe_until(bridge, lambda rs: len(rs) == 1)
    assert seen.version == spec.version
    (from_host,) = _engine(instance_name, docker_client, "host").observe()
    assert from_host.version != spec.version and from_host.version.startswith(spec.version)
