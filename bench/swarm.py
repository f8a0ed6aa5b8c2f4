"""Section `swarm`: the Swarm engine on a 3-node lab of this machine (tests/swarm/lab.py: one
dockerd per network namespace, brought up for the section and taken down after it).

(a) converge: N replicas from nothing to every one answering GET /-/ready at its node's port,
    two ways, interleaved: `reconciler up -d --engine swarm --registry LAB` as a subprocess
    (DOCKER_HOST the manager: the CLI, the config, the image, N services, the global ingress,
    done once every node's ingress serves), against `docker service create --replicas N` of the
    very image the reconciler pinned, with the same command, env, user, reservations, restart
    policy, dnsrr, host-mode port and an attachable overlay. One poller (`TaskReadyWatch`) times
    both. The reconciler's first run (the image built and pushed, the base pulled by the nodes)
    is reported apart.
(b) node loss: the N replicas under the reconciler (in-process, passes asked for by the engine's
    events, as the daemon's), then a worker's dockerd stopped: seconds until the manager marks
    the node down, until /status says so, until every replica is RUNNING again (none on the
    lost node); and the same service's tasks for the baseline.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import docker

from bench.core import Cleanup, Stopwatch, answers_ready, median, wait_until
from bench.workload import IMAGE, Workload, deployment_spec
from reconciler.model import ReplicaState
from reconciler.runtime import containers, labels
from tests.support import free_port

TIMEOUT_S = 300.0
LOST_NODE = 3


def run(cleanup: Cleanup, n: int, repeats: int) -> dict[str, Any]:
    from tests.swarm import lab as swarm

    name = f"b{uuid.uuid4().hex[:7]}"
    lab = swarm.up(name, 3, IMAGE, {}, log=False, owner_pid=os.getpid(), heartbeat="2s")
    try:
        return _measure(cleanup, lab, n, repeats)
    finally:
        swarm.down(name, log=False)


class TaskReadyWatch:
    """Counts the running tasks of services labelled `owner` whose host-mode port 8000 answers
    GET /-/ready at their node's address (not on `excluding` nodes): the one criterion."""

    def __init__(self, api: Any, owner: str, excluding: frozenset[str] = frozenset()) -> None:
        self._api, self._owner, self._excluding = api, owner, excluding
        self._ready: set[str] = set()
        self._addrs: dict[str, str] = {}

    def count(self) -> int:
        filters = {"label": [f"{labels.OWNER}={self._owner}"], "desired-state": ["running"]}
        for task in self._api.tasks(filters=filters):
            node = str(task.get("NodeID") or "")
            if task["ID"] in self._ready or node in self._excluding:
                continue
            if task["Status"]["State"] != "running" or not self._role_replica(task):
                continue
            port = _port(task)
            if node not in self._addrs:
                self._addrs = {n["ID"]: n["Status"].get("Addr", "") for n in self._api.nodes()}
            if port and answers_ready(port, host=self._addrs.get(node, "")):
                self._ready.add(task["ID"])
        return len(self._ready)

    def _role_replica(self, task: dict[str, Any]) -> bool:
        return 8000 in {p.get("TargetPort") for p in _ports(task)}

    def wait(self, n: int, timeout: float = TIMEOUT_S) -> None:
        wait_until(lambda: self.count() >= n, timeout=timeout, interval=0.05, what=f"{n} ready")


def _ports(task: dict[str, Any]) -> list[dict[str, Any]]:
    return list((task["Status"].get("PortStatus") or {}).get("Ports") or [])


def _port(task: dict[str, Any]) -> int | None:
    return next((int(p["PublishedPort"]) for p in _ports(task) if p.get("TargetPort") == 8000
                 and p.get("PublishedPort")), None)  # fmt: skip


def _measure(cleanup: Cleanup, lab: Any, n: int, repeats: int) -> dict[str, Any]:
    client = docker.DockerClient(base_url=lab.manager.socket)
    tree = Workload(replicas=n, port=free_port()).write(Path(tempfile.mkdtemp(prefix="bswarm-")))
    env = {**os.environ, "DOCKER_HOST": lab.manager.socket}
    first = _reconciler(cleanup, client, lab, tree, env)
    image = first.pop("image")
    ours, base = [], []
    for _ in range(repeats):
        ours.append(_reconciler(cleanup, client, lab, tree, env)["ready_s"])
        base.append(_baseline(cleanup, client, lab, tree, image, n)["ready_s"])
    loss = _node_loss(cleanup, client, lab, tree)
    base_loss = _baseline_loss(cleanup, client, lab, tree, image, n)
    return {
        "replicas": n,
        "nodes": 3,
        "reconciler_s": median(ours),
        "service_create_s": median(base),
        "ratio": median(ours) / median(base),
        "runs": {"reconciler": ours, "service_create": base},
        "reconciler_first_s": first["ready_s"],
        "spread": first["spread"],
        **loss,
        "baseline_recovered_s": base_loss,
    }


def _reconciler(
    cleanup: Cleanup, client: Any, lab: Any, tree: Path, env: dict[str, str]
) -> dict[str, Any]:
    owner = cleanup.owner("swarm")
    n = deployment_spec(tree).num_replicas
    watch = TaskReadyWatch(client.api, owner)
    clock = Stopwatch()
    cmd = [sys.executable, "-m", "reconciler", "up", "-d", "serve_config.yaml", "--engine",
           "swarm", "--registry", lab.registry, "--instance", owner, "--log-level", "ERROR",
           "--timeout", str(TIMEOUT_S), "--cache-dir", str(tree / ".cache")]  # fmt: skip
    proc = cleanup.process(subprocess.Popen(cmd, cwd=tree, env=env, stderr=subprocess.PIPE))
    watch.wait(n)
    ready = clock.elapsed()
    _, err = proc.communicate(timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"reconciler up -d exited {proc.returncode}: {err.decode()[-2000:]}")
    returned = clock.elapsed()
    services = client.api.services(filters={"label": [f"{labels.OWNER}={owner}",
                                                      f"{labels.ROLE}=replica"]})  # fmt: skip
    image = services[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    tasks = client.api.tasks(filters={"label": [f"{labels.OWNER}={owner}"],
                                      "desired-state": ["running"]})  # fmt: skip
    nodes = {t["NodeID"] for t in tasks if t["ServiceID"] in {s["ID"] for s in services}}
    _down(tree, owner, env)
    return {"ready_s": ready, "returned_s": returned, "image": image, "spread": len(nodes)}


def _down(tree: Path, owner: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "reconciler", "down", "--engine", "swarm", "--instance", owner,
           "--log-level", "ERROR", "--cache-dir", str(tree / ".cache")]  # fmt: skip
    subprocess.run(cmd, cwd=tree, env=env, check=True, timeout=TIMEOUT_S, capture_output=True)


def _baseline(
    cleanup: Cleanup, client: Any, lab: Any, tree: Path, image: str, n: int
) -> dict[str, Any]:
    owner = cleanup.owner("swbase")
    network = f"{owner}-net"
    _docker(lab, "network", "create", "-d", "overlay", "--attachable", network,
            "--label", f"{labels.OWNER}={owner}")  # fmt: skip
    try:
        watch = TaskReadyWatch(client.api, owner)
        clock = Stopwatch()
        _docker(lab, *_service_create(tree, image, n, owner, network))
        watch.wait(n)
        return {"ready_s": clock.elapsed()}
    finally:
        _remove_baseline(lab, client, owner, network)


def _service_create(tree: Path, image: str, n: int, owner: str, network: str) -> list[str]:
    """`docker service create` of the reconciler's replica, N at once (no control token)."""
    spec = deployment_spec(tree)
    env = containers.replica_env(spec, 0, "http://unused:8001")
    args = ["service", "create", "-d", "--name", owner, "--replicas", str(n),
            "--label", f"{labels.OWNER}={owner}", "--network", network,
            "--endpoint-mode", "dnsrr", "--publish", "mode=host,target=8000",
            "--user", containers.USER, "--workdir", "/app/work", "--cap-drop", "ALL",
            "--restart-condition", "on-failure", "--restart-delay", "1s",
            "--restart-max-attempts", "1", "--stop-grace-period", "3s",
            "--reserve-cpu", str(spec.resources.num_cpus), "--limit-pids", "256",
            "--no-healthcheck"]  # fmt: skip
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    return [*args, image, *containers.REPLICA_COMMAND]


def _remove_baseline(lab: Any, client: Any, owner: str, network: str) -> None:
    with contextlib.suppress(subprocess.CalledProcessError):
        _docker(lab, "service", "rm", owner)
    ours = {"label": [f"{labels.OWNER}={owner}"]}
    wait_until(lambda: not client.api.tasks(filters=ours), timeout=60,
               what="the baseline's tasks gone")  # fmt: skip
    wait_until(lambda: _quiet(lab, "network", "rm", network), timeout=60, what="its network")


def _docker(lab: Any, *args: str) -> str:
    done = subprocess.run(["docker", "-H", lab.manager.socket, *args], capture_output=True,
                          text=True, check=True, timeout=TIMEOUT_S)  # fmt: skip
    return done.stdout


def _quiet(lab: Any, *args: str) -> bool:
    try:
        _docker(lab, *args)
    except subprocess.CalledProcessError:
        return False
    return True


def _node_loss(cleanup: Cleanup, client: Any, lab: Any, tree: Path) -> dict[str, Any]:
    """The reconciler as the daemon runs it (passes on events, else every second), N replicas
    converged, then node LOST_NODE stopped."""
    from reconciler import spec
    from reconciler.reconcile import Reconciler, WorkTreeTarget
    from reconciler.runtime.swarm_engine import SwarmEngine
    from tests.swarm import lab as swarm

    owner = cleanup.owner("swloss")
    engine = SwarmEngine(instance=owner, default_image=IMAGE, token_file=tree / ".cache" / "t",
                         registry=lab.registry, docker_client=client,
                         cache_dir=tree / ".cache")  # fmt: skip
    target = WorkTreeTarget(root=tree, config_path="serve_config.yaml", load=spec.load_config,
                            prepare=engine.prepare)  # fmt: skip
    reconciler = Reconciler(target=target, engine=engine, redact=spec.redacted_document,
                            interval_s=1.0)  # fmt: skip
    asked, stop = threading.Event(), threading.Event()
    engine.on_replica_failure(asked.set)

    def loop() -> None:
        while not stop.is_set():
            asked.clear()
            delay = reconciler.run_pass()
            asked.wait(min(delay if delay is not None else 1.0, 1.0))

    thread = threading.Thread(target=loop, daemon=True)
    try:
        thread.start()
        n = deployment_spec(tree).num_replicas
        wait_until(lambda: _healthy(reconciler, n), timeout=TIMEOUT_S, what="converged")
        lost = lab.nodes[LOST_NODE - 1]
        node_id = _node_id(client, lost.name)
        clock = Stopwatch()
        swarm.stop_daemon(lab, LOST_NODE)
        stopped = clock.elapsed()
        wait_until(lambda: _node_state(client, node_id) == "down", timeout=TIMEOUT_S,
                   interval=0.05, what="node down")  # fmt: skip
        down = clock.elapsed()
        wait_until(lambda: _status_says_down(reconciler, lost.name), timeout=TIMEOUT_S,
                   interval=0.05, what="/status says so")  # fmt: skip
        said = clock.elapsed()
        wait_until(lambda: _healthy(reconciler, n), timeout=TIMEOUT_S, interval=0.05,
                   what="every replica RUNNING again")  # fmt: skip
        recovered = clock.elapsed()
        swarm.start_daemon(lab, LOST_NODE)
        swarm.wait_daemon(lab, LOST_NODE)
        wait_until(lambda: _node_state(client, node_id) == "ready", timeout=TIMEOUT_S,
                   what="node back")  # fmt: skip
        return {
            "loss_stop_s": stopped,
            "loss_down_s": down,
            "loss_status_after_down_s": said - down,
            "loss_recovered_s": recovered,
            "loss_recovered_after_down_s": recovered - down,
        }
    finally:
        stop.set()
        asked.set()
        thread.join(timeout=60)
        engine.remove_all()
        engine.close()


def _healthy(reconciler: Any, n: int) -> bool:
    snap = reconciler.snapshot
    apps = snap.applications
    if not apps or str(apps[0].status) != "RUNNING":
        return False
    d = apps[0].deployments[0]
    return dict(d.replica_states).get(ReplicaState.RUNNING.value) == n and not d.pending_replicas


def _status_says_down(reconciler: Any, node: str) -> bool:
    return any(x.name == node and not x.ready for x in reconciler.snapshot.nodes)


def _node_id(client: Any, hostname: str) -> str:
    return next(n["ID"] for n in client.api.nodes() if n["Description"]["Hostname"] == hostname)


def _node_state(client: Any, node_id: str) -> str:
    return str(client.api.inspect_node(node_id)["Status"]["State"])


def _baseline_loss(
    cleanup: Cleanup, client: Any, lab: Any, tree: Path, image: str, n: int
) -> float:
    """Seconds from stopping the node until the service's N tasks answer again elsewhere."""
    from tests.swarm import lab as swarm

    owner = cleanup.owner("swbloss")
    network = f"{owner}-net"
    _docker(lab, "network", "create", "-d", "overlay", "--attachable", network,
            "--label", f"{labels.OWNER}={owner}")  # fmt: skip
    try:
        _docker(lab, *_service_create(tree, image, n, owner, network))
        TaskReadyWatch(client.api, owner).wait(n)
        lost = lab.nodes[LOST_NODE - 1]
        node_id = _node_id(client, lost.name)
        clock = Stopwatch()
        swarm.stop_daemon(lab, LOST_NODE)
        TaskReadyWatch(client.api, owner, excluding=frozenset({node_id})).wait(n)
        recovered = clock.elapsed()
        swarm.start_daemon(lab, LOST_NODE)
        swarm.wait_daemon(lab, LOST_NODE)
        wait_until(lambda: _node_state(client, node_id) == "ready", timeout=TIMEOUT_S,
                   what="node back")  # fmt: skip
        return recovered
    finally:
        _remove_baseline(lab, client, owner, network)

