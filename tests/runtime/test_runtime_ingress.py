"""The ingress container with a hand-written HAProxy config: user traffic to the ingress
deployment, handle calls between deployments through the :8001 router, and config reloads
under load that drop no request."""

from __future__ import annotations

import threading
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

from reconciler.model import CodeTree, HttpOptions, IngressConfig, ReplicaState
from reconciler.runtime.docker_engine import DockerEngine

pytestmark = pytest.mark.docker

# The global section as routing.py renders it: master-worker, the listeners handed to each new
# worker on a reload (`expose-fd listeners`), the runtime API on TCP (the engine moves it, and
# the other binds, where its ingress listens: in the host's network, no SO_REUSEPORT either).
CFG = """
global
    master-worker
    maxconn 2000
    stats socket /tmp/haproxy.sock mode 600 level admin expose-fd listeners
    stats socket ipv4@0.0.0.0:8404 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
frontend user
    bind :8000
    default_backend market
frontend router
    bind :8001
    use_backend stand if {{ path_beg /-/call/default/Stand/ }}
    use_backend market if {{ path_beg /-/call/default/Market/ }}
backend market
    option httpchk GET /-/ready
    server m0 {market}:8000 check inter 500ms
backend stand
    option httpchk GET /-/ready
    server s0 {stand}:8000 check inter 500ms
# generation {generation}
"""


@pytest.fixture
def engine(instance_name: str, docker_client: Any) -> Iterator[DockerEngine]:
    yield DockerEngine(
        instance=instance_name, default_image=BASE_IMAGE, docker_client=docker_client
    )


def _hand_written(text: str) -> IngressConfig:
    """A config written by hand: no servers the engine could move alone, so every change of
    it is a reload."""
    return IngressConfig(text=text, skeleton=text)


def _deploy(engine: DockerEngine, code: CodeTree) -> dict[str, Any]:
    engine.start_replica(make_spec(code, name="Stand", user_config={"price": 3}), 0)
    engine.start_replica(make_spec(code, name="Market", is_ingress=True, route_prefix="/"), 0)
    replicas = observe_until(
        engine, lambda rs: len(rs) == 2 and all(r.state is ReplicaState.RUNNING for r in rs)
    )
    return {r.deployment: r for r in replicas}


def _reloads(docker_client: Any, engine: DockerEngine) -> int:
    """Reloads HAProxy has finished: the worker each one replaced has exited."""
    return int(docker_client.api.logs(engine.ingress_name).decode().count("Former worker"))


def _logs(docker_client: Any, replicas: Any) -> str:
    """The replicas' last log lines, for a failure's message (what a 500 was)."""
    tails = [docker_client.api.logs(r.container_id, tail=30).decode() for r in replicas]
    return "\n".join(tails)


def test_ingress_routes_users_and_handle_calls(
    engine: DockerEngine, code_tree: CodeTree, docker_client: Any
) -> None:
    replicas = _deploy(engine, code_tree)
    stand, market = replicas["Stand"].network_ip, replicas["Market"].network_ip
    port = free_port()
    http_options = HttpOptions(host="127.0.0.1", port=port)
    engine.apply_ingress(
        http_options, _hand_written(CFG.format(market=market, stand=stand, generation=0))
    )
    url = f"http://127.0.0.1:{port}/"
    # Market.__call__ asks the Stand through the router (:8001) with a handle: price 3 x 2.
    wait_until(lambda: try_http(url, b'["MANGO", 2]') == (200, b"6"), 30, "answer via ingress")
    assert http(url, b'["PEAR", 5]')[1] == b"15"

    generation = 1
    results: list[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                results.append(http(url, b'["MANGO", 1]', timeout=10)[0])
            except OSError:
                results.append(-1)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for generation in range(1, 9):
            seen = len(results)
            engine.apply_ingress(
                http_options,
                _hand_written(CFG.format(market=market, stand=stand, generation=generation)),
            )
            # Wait until this reload is over: HAProxy's master drops a SIGUSR2 that comes while
            # it is still reloading, and 20 requests can take less time than a reload.
            wait_until(lambda g=generation: _reloads(docker_client, engine) >= g, 30, "the reload")
            wait_until(lambda seen=seen: len(results) >= seen + 20, 30, "requests after reload")
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert len(results) > 160
    logs = docker_client.api.logs(engine.ingress_name).decode()
    assert logs.count("Reloading HAProxy") >= 8, logs  # the reloads did happen
    assert engine.ingress_reloads == 8
    assert set(results) == {200}, (
        f"{len(results)} requests, failures: {results.count(-1)}, answers: {set(results)}\n"
        + _logs(docker_client, replicas.values())
    )
    written = docker_client.api.exec_create(engine.ingress_name, ["cat", "/etc/haproxy/serve.cfg"])
    assert "    noreuseport\n" in docker_client.api.exec_start(written).decode()

    # Recreated on a new port; None removes it.
    other = free_port()
    engine.apply_ingress(
        HttpOptions(host="127.0.0.1", port=other),
        _hand_written(CFG.format(market=market, stand=stand, generation=99)),
    )
    wait_until(
        lambda: try_http(f"http://127.0.0.1:{other}/", b'["MANGO", 1]')[1] == b"3", 30, "moved"
    )
    engine.apply_ingress(None, None)
    with pytest.raises(OSError):
        http(f"http://127.0.0.1:{other}/", b'["MANGO", 1]', timeout=2)
