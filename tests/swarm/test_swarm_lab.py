"""The swarm lab itself, on real dockerds: 3 Ready nodes, a replicated service spread over nodes
and answering from the host, an image through the lab registry onto a worker, a global ingress
reaching replicas on other nodes, a lost worker's tasks rescheduled (timed), and a lab that
leaves nothing behind."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from tests.swarm import lab as swarm
from tests.swarm import plumbing as pl
from tests.swarm import specs
from tests.swarm.conftest import GPU_NODE, SwarmLab, unique
from tests.swarm.tasks import (
    endpoint,
    http_get,
    node_addrs,
    node_names,
    overlay_ip,
    poll,
    running,
)

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(240)]

HTTP_SERVER = ["python3", "-m", "http.server", "8080"]
# http.server as PID 1 ignores SIGTERM (no handler, and PID 1 has no default action): SIGINT
# stops it at once instead of after the 10 s grace period.
QUICK_STOP = ["--stop-signal", "SIGINT"]


def test_lab_has_three_ready_nodes_each_its_own_daemon(swarm_lab: SwarmLab) -> None:
    nodes = swarm_lab.manager.nodes()
    by_name = {n["Description"]["Hostname"]: n for n in nodes}
    assert sorted(by_name) == sorted(n.name for n in swarm_lab.nodes)
    assert {n["Status"]["State"] for n in nodes} == {"ready"}
    assert [n["Spec"]["Role"] for n in (by_name[x.name] for x in swarm_lab.nodes)] == [
        "manager", "worker", "worker"]
    assert {by_name[x.name]["Status"]["Addr"] for x in swarm_lab.nodes} == {
        x.ip for x in swarm_lab.nodes}
    gpus = by_name[swarm_lab.node(GPU_NODE).name]["Description"]["Resources"]["GenericResources"]
    assert sorted(g["NamedResourceSpec"]["Value"] for g in gpus) == ["GPU-0", "GPU-1"]
    host_netns = os.readlink("/proc/self/ns/net")
    daemons = [pl.read_pid(n.pidfile) for n in swarm_lab.lab.nodes]
    netns = {os.readlink(f"/proc/{pid}/ns/net") for pid in daemons}
    assert len(netns) == 3 and host_netns not in netns  # nothing shares the host's network
    for k in (1, 2, 3):  # the base image is on every node, so no service needs a registry
        assert swarm_lab.docker("image", "inspect", "-f", "{{.Id}}", specs.BASE_IMAGE, node=k)


def test_replicated_service_spreads_and_answers_from_the_host(
    swarm_lab: SwarmLab, service_names: list[str]
) -> None:
    name = unique("spread")
    service_names.append(name)
    swarm_lab.docker("service", "create", "-d", "--name", name, "--replicas", "3", *QUICK_STOP,
                     "--no-resolve-image", "--publish", "mode=host,target=8080",
                     specs.BASE_IMAGE, *HTTP_SERVER)
    m = swarm_lab.manager
    tasks = poll(lambda: len(running(m, name)) == 3 and running(m, name), 60, "3 tasks running")
    assert len({t["NodeID"] for t in tasks}) > 1, "every task on one node"
    addrs = node_addrs(m)
    for task in tasks:  # each task's ephemeral node port, read from the task API
        ep = poll(lambda t=task: endpoint(m.tasks(id=[t["ID"]])[0], 8080, addrs), 20, "port")
        assert "Directory listing" in poll(lambda e=ep: http_get(e), 20, f"{ep} answers")


@pytest.mark.skipif(swarm.ipvs_missing() is not None, reason=swarm.ipvs_missing() or "")
def test_routing_mesh_answers_on_every_node(
    swarm_lab: SwarmLab, service_names: list[str]
) -> None:
    name = unique("mesh")
    service_names.append(name)
    port = 18000 + uuid.uuid4().int % 1000
    swarm_lab.docker("service", "create", "-d", "--name", name, "--replicas", "2", *QUICK_STOP,
                     "--no-resolve-image", "--publish", f"published={port},target=8080",
                     specs.BASE_IMAGE, *HTTP_SERVER)
    for node in swarm_lab.nodes:  # a node without a task answers too
        assert poll(lambda n=node: http_get(f"{n.ip}:{port}"), 60, f"mesh on {node.name}")


@pytest.mark.skipif(swarm.ipvs_missing() is None, reason="this kernel has IPVS")
def test_without_ipvs_a_mesh_port_is_refused_at_create(
    swarm_lab: SwarmLab, service_names: list[str]
) -> None:
    """The lab removes the ingress network where the kernel has no IPVS, so a service that asks
    for the routing mesh fails loudly instead of never answering."""
    name = unique("mesh")
    service_names.append(name)  # (in case it were created after all)
    with pytest.raises(AssertionError, match="needs ingress network"):
        swarm_lab.docker("service", "create", "-d", "--name", name,
                         "--no-resolve-image", "--publish", "18999:8080", specs.BASE_IMAGE,
                         *HTTP_SERVER)


def test_global_ingress_reaches_replicas_on_other_nodes(
    swarm_lab: SwarmLab, service_names: list[str]
) -> None:
    """What stands in for the mesh: HAProxy on every node (global, host-mode port), replicas
    found by their overlay addresses in the task API."""
    m, net = swarm_lab.manager, unique("net")
    m.post("/networks/create", specs.overlay_network(net))
    replicas = [unique("rep") for _ in range(3)]
    ingress, cfg_name, port = unique("ingress"), unique("cfg"), 18000 + uuid.uuid4().int % 1000
    service_names.extend([*replicas, ingress])
    try:
        for r in replicas:
            m.create_service(specs.replica_service(r, network=net, control_port=None))
        tasks = {r: poll(lambda r=r: running(m, r) and running(m, r)[0], 60, r) for r in replicas}
        servers = [(r, f"{overlay_ip(t, net)}:8080") for r, t in tasks.items()]
        cfg = m.post("/configs/create", specs.config_object(
            cfg_name, specs.haproxy_config(port, servers)))["ID"]
        m.create_service(specs.haproxy_service(ingress, network=net, port=port, config_id=cfg,
                                               config_name=cfg_name))
        where = node_names(m)
        replica_nodes = {where[t["NodeID"]] for t in tasks.values()}
        for node in swarm_lab.nodes:
            addr = f"{node.ip}:{port}"
            poll(lambda a=addr: http_get(a, timeout=1), 60, f"ingress on {node.name}")
            seen = {http_get(addr).split()[0] for _ in range(12)}
            assert seen == set(replicas), f"{node.name} reached {seen}"
        assert len(replica_nodes) > 1 or len(swarm_lab.nodes) == 1
    finally:
        swarm_lab.remove_services(*service_names)
        service_names.clear()
        poll(lambda: _deleted(m, f"/configs/{cfg_name}"), 30, "config removed")
        poll(lambda: _deleted(m, f"/networks/{net}"), 60, "network removed")


def _deleted(m, path: str) -> bool:  # type: ignore[no-untyped-def]
    from tests.swarm.engine import EngineError

    try:
        m.delete(path)
    except EngineError as exc:
        return exc.status == 404
    return True


def test_image_pushed_to_the_lab_registry_runs_on_a_worker(
    swarm_lab: SwarmLab, service_names: list[str]
) -> None:
    token = uuid.uuid4().hex
    ref = f"{swarm_lab.registry}/lab/hello:{token[:8]}"
    dockerfile = f"FROM {specs.BASE_IMAGE}\nRUN mkdir /srv/www && echo {token} > /srv/www/token\n"
    swarm_lab.docker("build", "-q", "-t", ref, "-", input=dockerfile)  # on the manager
    swarm_lab.docker("push", ref)
    name = unique("pulled")
    service_names.append(name)
    swarm_lab.docker("service", "create", "-d", "--name", name, *QUICK_STOP, "--constraint",
                     "node.role==worker", "--publish", "mode=host,target=8080", ref,
                     *HTTP_SERVER, "--directory", "/srv/www")
    m = swarm_lab.manager
    pinned = m.get(f"/services/{name}")["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert pinned.startswith(f"{ref}@sha256:")  # the CLI pinned the digest from the registry
    task = poll(lambda: running(m, name) and running(m, name)[0], 120, "pulled task running")
    assert task["NodeID"] != swarm_lab.node_id(1)
    ep = poll(lambda: endpoint(m.tasks(id=[task["ID"]])[0], 8080, node_addrs(m)), 20, "port")
    assert poll(lambda: http_get(ep, "/token"), 20, "token").strip() == token


def test_a_stopped_workers_tasks_are_rescheduled(
    swarm_lab: SwarmLab, service_names: list[str], record_property
) -> None:  # type: ignore[no-untyped-def]
    m, name, lost = swarm_lab.manager, unique("loss"), 2
    service_names.append(name)
    # A replacement task waits out the restart delay (5 s unless set) after the node is down.
    swarm_lab.docker("service", "create", "-d", "--name", name, "--replicas", "6", *QUICK_STOP,
                     "--no-resolve-image", "--restart-delay", "1s", specs.BASE_IMAGE,
                     *HTTP_SERVER)
    poll(lambda: len(running(m, name)) == 6, 60, "6 tasks running")
    lost_id = swarm_lab.node_id(lost)
    if not any(t["NodeID"] == lost_id for t in running(m, name)):
        pytest.skip("the scheduler put no task on node 2")  # it spreads: not seen here
    t0 = time.monotonic()
    swarm_lab.stop_node(lost)
    try:
        node = poll(lambda: (n := m.get(f"/nodes/{lost_id}"))["Status"]["State"] == "down" and n,
                    60, "node 2 down", interval=0.2)
        down_s = time.monotonic() - t0
        poll(lambda: len([t for t in running(m, name) if t["NodeID"] != lost_id]) == 6, 60,
             "6 tasks running on the other nodes", interval=0.2)
        moved_s = time.monotonic() - t0
        assert node["Status"]["Message"] == "heartbeat failure"
        stale = [t for t in m.tasks(service=[name]) if t["NodeID"] == lost_id]
        assert stale and {t["DesiredState"] for t in stale} == {"shutdown"}
    finally:
        swarm_lab.start_node(lost)
    record_property("node_down_s", round(down_s, 1))
    record_property("rescheduled_s", round(moved_s, 1))
    print(f"\nnode 2 stopped: down for the manager after {down_s:.1f}s, "
          f"its tasks running elsewhere after {moved_s:.1f}s")


@pytest.mark.slow
def test_a_lab_recovers_from_a_crash_and_leaves_nothing_behind() -> None:
    """A 1-node lab of its own (no image): up twice is a no-op; after kill -9 of its dockerd
    `up` rebuilds it; `down` (twice) leaves nothing. (The session lab's own teardown checks
    `leftovers` too, in every run.)"""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    name = f"c{uuid.uuid4().hex[:7]}"
    try:
        lab = swarm.up(name, 1, None, log=False, owner_pid=os.getpid())
        assert swarm.up(name, 1, None, log=False).octet == lab.octet  # healthy: left as it is
        pid = pl.read_pid(lab.manager.pidfile)
        assert pid is not None, "the lab's dockerd is not running"
        os.kill(pid, signal.SIGKILL)  # a crash
        rebuilt = swarm.up(name, 1, None, log=False)
        assert swarm.healthy(rebuilt)
    finally:
        swarm.down(name, log=False)
        swarm.down(name, log=False)
    assert swarm.leftovers(name) == []
