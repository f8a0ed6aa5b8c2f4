"""The `swarm_lab` fixture (a plugin of tests/conftest.py, so that tests/swarm and the
real-engine tests of tests/e2e share one lab per session): a 3-node Docker Swarm on this machine,
brought up once per test session
(tests/swarm/lab.py does the work; `scripts/swarm-lab` is the same lab for a user) and taken down
at the end whatever happened. Node 3 advertises two GPUs as generic resources (gpu=GPU-0, GPU-1);
the dispatcher heartbeat is 2 s, so a lost node is noticed sooner than with Docker's 5 s.
Needs root, iproute2, iptables, docker-registry and the base image on the host engine; without
them the swarm tests are skipped with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.swarm import lab as swarm
from tests.swarm.engine import Engine, EngineError
from tests.swarm.tasks import poll

GPU_NODE = 3
GPUS = ("gpu=GPU-0", "gpu=GPU-1")
# A stopped node is down for the manager after ~6 s instead of ~14 s (Docker's 5 s heartbeat),
# still with room for a loaded machine; docs/swarm-design.md has both measured.
HEARTBEAT = "2s"


@dataclass(frozen=True)
class LabNode:
    index: int
    name: str  # hostname in `docker node ls`
    ip: str  # where the host reaches it (and its host-mode ports)
    docker_host: str


@dataclass
class SwarmLab:
    """What a test needs of the lab: the manager's DOCKER_HOST, the nodes, the registry, and
    node loss on demand."""

    lab: swarm.Lab
    nodes: list[LabNode]
    manager: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.manager = Engine(self.docker_host, timeout=60)

    @property
    def name(self) -> str:
        return self.lab.name

    @property
    def docker_host(self) -> str:
        return self.lab.manager.socket

    @property
    def registry(self) -> str:
        return self.lab.registry

    def node(self, k: int) -> LabNode:
        return self.nodes[k - 1]

    def engine(self, k: int) -> Engine:
        return Engine(self.node(k).docker_host, timeout=60)

    def docker(self, *args: str, node: int = 1, timeout: float = 120.0,
               input: str | None = None) -> str:
        """The docker CLI against a node (the manager by default); stdout, or fail with stderr."""
        done = subprocess.run(["docker", "-H", self.node(node).docker_host, *args],
                              capture_output=True, text=True, timeout=timeout, input=input,
                              check=False)
        if done.returncode:
            raise AssertionError(f"docker {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def node_id(self, k: int) -> str:
        return next(n["ID"] for n in self.manager.nodes()
                    if n["Description"]["Hostname"] == self.node(k).name)

    def stop_node(self, k: int) -> None:
        """Node k's dockerd stops (its containers with it): a lost node for the manager."""
        if k == 1:
            raise ValueError("node 1 is the manager; stop a worker")
        swarm.stop_daemon(self.lab, k)

    def start_node(self, k: int, timeout: float = 60.0) -> None:
        """Start node k's dockerd again and wait until the manager has it Ready."""
        swarm.start_daemon(self.lab, k)
        swarm.wait_daemon(self.lab, k)
        node_id = self.node_id(k)
        poll(lambda: self.manager.get(f"/nodes/{node_id}")["Status"]["State"] == "ready",
             timeout, f"node {k} Ready again")

    def remove_services(self, *names: str) -> None:
        """Remove services and wait until their containers are gone from every node."""
        for name in names:
            self.manager.remove_service(name)

        def gone() -> bool:
            for n in self.nodes:
                try:
                    left = self.engine(n.index).get("/containers/json", all="1", filters={
                        "label": ["com.docker.swarm.service.name"]})
                except (OSError, EngineError):
                    continue  # a node that is down holds nothing the manager knows about
                if any(c["Labels"]["com.docker.swarm.service.name"] in names for c in left):
                    return False
            return True

        poll(gone, 60, f"containers of {names} removed")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the swarm lab needs root (network namespaces, iptables)"
    for tool in ("ip", "iptables", "nsenter", "unshare", "dockerd", "docker", "docker-registry"):
        if not shutil.which(tool):
            return f"{tool} not found (scripts/setup installs iproute2, iptables, docker-registry)"
    probe = subprocess.run(["docker", "image", "inspect", swarm.BASE_IMAGE], capture_output=True,
                           check=False)
    if probe.returncode:
        return f"base image {swarm.BASE_IMAGE} missing on the host engine: scripts/build-image"
    return None


@pytest.fixture(scope="session")
def swarm_lab() -> Iterator[SwarmLab]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    swarm.sweep_orphans(log=False)  # labs of test sessions that crashed
    name = f"t{uuid.uuid4().hex[:7]}"
    t0 = time.monotonic()
    try:
        lab = swarm.up(name, 3, swarm.BASE_IMAGE, {GPU_NODE: list(GPUS)}, log=False,
                       owner_pid=os.getpid(), heartbeat=HEARTBEAT)
        nodes = [LabNode(n.index, n.name, n.ip, n.socket) for n in lab.nodes]
        print(f"\nswarm lab {name}: 3 nodes up in {time.monotonic() - t0:.1f}s")
        yield SwarmLab(lab, nodes)
    finally:
        print(f"\nswarm lab: {swarm.down(name, log=False)}")
        left = swarm.leftovers(name)
        assert not left, f"swarm lab {name} left behind: {left}"


@pytest.fixture
def service_names(swarm_lab: SwarmLab) -> Iterator[list[str]]:
    """Names a test creates services under (unique per test); removed after it."""
    names: list[str] = []
    yield names
    if names:
        swarm_lab.remove_services(*names)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
