"""The Swarm engine on the 3-node lab, as `reconciler up --engine swarm` drives it: a config of
our own (Greeter, 3 replicas, and a GPU worker that only node 3 can hold) brought up once for the
module and taken through Serve's semantics in turn: spread over nodes and answering through the
ingress of every node; user_config in place (the same tasks); scale without touching running
replicas; a rolling update with no failed request under load; the GPU node lost (its replicas
moved, the GPU one pending, the status naming the node within one pass) and back; a restarted
reconciler that adopts everything and creates nothing. Each test leaves the config converged
for the next."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from reconciler.model import ReplicaState
from reconciler.runtime import labels
from tests.conftest import new_instance_name
from tests.e2e.conftest import GREETER, Harness, swarm_harness
from tests.load_client import RateResult, hold_rate
from tests.support import free_port, wait_for
from tests.swarm.fixtures import GPU_NODE, SwarmLab

pytestmark = [pytest.mark.swarm, pytest.mark.docker, pytest.mark.timeout(600)]
LOAD_S = 12  # the rolling update (3 replicas, one batch at a time) took 4-5 s on the lab


GPU_WORKER = """

@serve.deployment
class GpuWorker:
    def __call__(self, request):
        return {"gpu": os.environ.get("DOCKER_RESOURCE_GPU", "")}


gpu_app = GpuWorker.bind()
"""

CONFIG = """\
http_options:
  port: {port}
applications:
  - name: default
    route_prefix: /
    import_path: greeter:app
    deployments:
      - name: Greeter
        num_replicas: 3
        user_config:
          greeting: hello
        health_check_period_s: 1
        health_check_timeout_s: 5
        graceful_shutdown_wait_loop_s: 0.2
        graceful_shutdown_timeout_s: 5
        ray_actor_options:
          num_cpus: 0.2
  - name: gpu
    route_prefix: /gpu
    import_path: greeter:gpu_app
    deployments:
      - name: GpuWorker
        graceful_shutdown_timeout_s: 2
        ray_actor_options:
          num_cpus: 0.1
          num_gpus: 1
"""


@pytest.fixture(scope="module")
def greeter(swarm_lab: SwarmLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    root = tmp_path_factory.mktemp("greeter")
    (root / "greeter.py").write_text(GREETER + GPU_WORKER)
    (root / "serve_config.yaml").write_text(CONFIG.format(port=free_port()))
    h = swarm_harness(
        swarm_lab, root, new_instance_name(), "serve_config.yaml", tmp_path_factory.mktemp("st")
    )
    try:
        h.converge(timeout=240)
        yield h
    finally:
        h.engine.remove_all()
        h.engine.close()


def _port(h: Harness) -> int:
    return int((h.root / "serve_config.yaml").read_text().split("port: ")[1].split()[0])


def _ids(h: Harness, deployment: str = "Greeter") -> set[str]:
    return {r.container_id for r in h.running(deployment)}


def _services(lab: SwarmLab, h: Harness) -> dict[str, str]:
    """Service name -> ID of the instance's Greeter replicas, from the manager."""
    ours = [f"{labels.OWNER}={h.instance}", f"{labels.DEPLOYMENT}=Greeter"]
    found = lab.manager.get("/services", filters={"label": ours})
    return {s["Spec"]["Name"]: s["ID"] for s in found}


def _nodes_of(lab: SwarmLab, h: Harness) -> dict[str, str]:
    """Replica (task) id -> the name of the node it runs on."""
    names = {n["ID"]: n["Description"]["Hostname"] for n in lab.manager.nodes()}
    tasks = lab.manager.tasks(label=[f"{labels.OWNER}={h.instance}"])
    return {t["ID"]: names.get(t["NodeID"], "?") for t in tasks}


def _greeting(url: str) -> Any:
    return requests.post(url, json={}, timeout=5).json()


def test_replicas_spread_over_nodes_and_every_node_answers(
    greeter: Harness, swarm_lab: SwarmLab
) -> None:
    h, port = greeter, _port(greeter)
    where = _nodes_of(swarm_lab, h)
    assert len({where[i] for i in _ids(h)}) > 1, "every replica on one node"
    for node in swarm_lab.nodes:  # the ingress of each node reaches replicas on the others
        answers = {_greeting(f"http://{node.ip}:{port}/")["greeting"] for _ in range(6)}
        assert answers == {"hello"}, node.name
    gpu = h.running("GpuWorker")
    assert [where[r.container_id] for r in gpu] == [swarm_lab.node(GPU_NODE).name]
    answer = requests.get(f"http://{swarm_lab.node(1).ip}:{port}/gpu", timeout=5).json()
    assert answer["gpu"] in ("GPU-0", "GPU-1")  # the one Swarm assigned it, in its env
    nodes = h.reconciler.snapshot.nodes
    assert sorted(n.name for n in nodes) == sorted(n.name for n in swarm_lab.nodes)
    assert all(n.ready for n in nodes) and sum(n.replicas for n in nodes) == 4
    free = h.reconciler.snapshot.capacity
    assert free is not None and free.gpus == 2  # node 3's two, advertised as generic resources
    unauthorized = requests.get(h.running("Greeter")[0].control_url + "/-/state", timeout=5)
    assert unauthorized.status_code == 401  # the control port is open to the nodes' network


def test_user_config_changes_in_place_on_the_same_tasks(
    greeter: Harness, swarm_lab: SwarmLab
) -> None:
    h = greeter
    before, services = _ids(h), _services(swarm_lab, h)
    h.edit("serve_config.yaml", "greeting: hello", "greeting: howdy")
    try:
        h.converge()
        assert _ids(h) == before and _services(swarm_lab, h) == services
        assert {h.call(r, "greet", "ann") for r in h.running("Greeter")} == {"howdy, ann (v1)"}
    finally:
        h.edit("serve_config.yaml", "greeting: howdy", "greeting: hello")
        h.converge()
    assert _ids(h) == before


def test_scale_up_and_down_leaves_running_replicas_alone(
    greeter: Harness, swarm_lab: SwarmLab
) -> None:
    h = greeter
    before = _services(swarm_lab, h)
    h.edit("serve_config.yaml", "num_replicas: 3", "num_replicas: 5")
    h.converge()
    scaled = _services(swarm_lab, h)
    assert len(scaled) == 5 and before.items() <= scaled.items()
    h.edit("serve_config.yaml", "num_replicas: 5", "num_replicas: 3")
    h.converge()
    assert _services(swarm_lab, h) == before


def test_rolling_update_fails_no_request_under_load(greeter: Harness, swarm_lab: SwarmLab) -> None:
    h = greeter
    before = _ids(h)
    result: list[RateResult] = []
    url = f"http://{swarm_lab.node(1).ip}:{_port(h)}/"
    load = threading.Thread(
        target=lambda: result.append(hold_rate(url, rate=40, seconds=LOAD_S, marker='"v2"')),
        daemon=True,
    )
    started = time.monotonic()
    load.start()
    h.edit("greeter.py", 'VERSION = "v1"', 'VERSION = "v2"')
    h.converge(timeout=120)
    assert time.monotonic() - started < LOAD_S, "the rollout outlasted the load"
    after = _ids(h)
    assert len(after) == 3 and not (after & before)
    load.join(timeout=90)
    assert result, "the load client did not finish"
    run = result[0]
    assert run.errors == 0, run.summary()
    assert run.marked > 0 and run.sent >= 40 * LOAD_S * 0.9, run.summary()  # v2 answered


def test_lost_node_replicas_move_and_the_status_says_so_within_one_pass(
    greeter: Harness, swarm_lab: SwarmLab
) -> None:
    h, lost = greeter, swarm_lab.node(GPU_NODE)  # the one node with GPUs
    where = _nodes_of(swarm_lab, h)
    on_it = {r.container_id for r in h.replicas() if where.get(r.container_id) == lost.name}
    assert on_it, "nothing runs on the GPU node"
    node_id = swarm_lab.node_id(lost.index)
    asked = threading.Event()
    h.engine.on_replica_failure(asked.set)  # as the daemon does: events ask for a pass
    engine: Any = h.engine
    swarm_lab.stop_node(lost.index)
    try:
        wait_for(
            lambda: swarm_lab.manager.get(f"/nodes/{node_id}")["Status"]["State"] == "down",
            timeout=60,
            interval=0.1,
            what=f"{lost.name} down for the manager",
        )
        wait_for(lambda: engine.node_events, timeout=10, what="the node event")
        assert asked.is_set()
        h.reconciler.run_pass()  # one pass after the manager knows: the status says it
        snap = h.reconciler.snapshot
        node = {n.name: n for n in snap.nodes}[lost.name]
        assert not node.ready and node.state == "down" and "heartbeat" in node.message
        assert not any(r.container_id in on_it for r in h.running("Greeter"))
        gpu = _gpu_status(h)
        assert gpu.pending_replicas == 1 and snap.pending_replicas >= 1, gpu
        assert lost.name in gpu.message, gpu.message  # "moved off node ... down"
        # Once Swarm has tried to place it (after the restart delay), its reason too.
        wait_for(
            lambda: "no suitable node" in _gpu_status(h, fresh=True).message,
            timeout=30,
            what="Swarm's reason in the GPU worker's status",
        )
        # The rest moves: Greeter runs its 3 elsewhere, the ingress of node 1 serves them.
        wait_for(lambda: _settled_greeter(h), timeout=120, what="Greeter moved off the node")
        assert not (_ids(h) & on_it)
        assert _greeting(f"http://{swarm_lab.node(1).ip}:{_port(h)}/")["greeting"] == "hello"
    finally:
        swarm_lab.start_node(lost.index)
    h.converge(timeout=120)  # the GPU worker is placed again, on the node that has GPUs
    assert [_nodes_of(swarm_lab, h)[i] for i in _ids(h, "GpuWorker")] == [lost.name]
    wait_for(
        lambda: _greeting(f"http://{lost.ip}:{_port(h)}/")["greeting"] == "hello",
        timeout=60,
        what=f"the ingress on {lost.name} again",
    )


def _gpu_status(h: Harness, fresh: bool = False) -> Any:
    if fresh:
        h.reconciler.run_pass()
    return next(a for a in h.reconciler.snapshot.applications if a.name == "gpu").deployments[0]


def _settled_greeter(h: Harness) -> bool:
    h.reconciler.run_pass()
    greeter = h.reconciler.snapshot.applications[0].deployments[0]
    return str(greeter.status) == "HEALTHY"


def test_restarted_reconciler_adopts_and_creates_nothing(
    greeter: Harness, swarm_lab: SwarmLab
) -> None:
    h = greeter
    before, services = _ids(h), _services(swarm_lab, h)
    h.restart()
    h.converge()
    assert _ids(h) == before and _services(swarm_lab, h) == services
    ingress: Any = h.engine.ingress  # type: ignore[attr-defined]
    assert ingress.updates == 0  # its tasks kept their configuration
    assert all(r.state is ReplicaState.RUNNING for r in h.replicas())  # both deployments
    for _ in range(3):  # and an unchanged config stays a no-op
        assert h.reconciler.run_pass() is None
    assert _ids(h) == before
