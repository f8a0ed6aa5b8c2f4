"""The design spike of the Swarm backend, re-runnable on a lab: measures what docs/swarm-design.md
reports (reaching replicas, overlay + HAProxy, create times, node loss, resources, events).

    scripts/swarm-lab up --name spike --generic-resource 3:gpu=GPU-A --generic-resource 3:gpu=GPU-B
    python3 -m tests.swarm.spike --name spike [--only reach,overlay,...] [--out FILE]

Every object it creates is named spk-* and removed at the end of its section."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.swarm import lab as swarm
from tests.swarm import plumbing as pl
from tests.swarm import specs
from tests.swarm.engine import Engine, EngineError
from tests.swarm.tasks import (
    current_tasks,
    endpoint,
    http_get,
    node_addrs,
    node_names,
    overlay_ip,
    poll,
    running,
)

Facts = dict[str, Any]


def _reachable(addr: str) -> bool:
    return bool(http_get(addr, timeout=1.0))


def _create_and_reach(
    m: Engine, spec: dict[str, Any], addrs: dict[str, str]
) -> tuple[float, float, str]:
    """Create a replica service; seconds until its task runs, until it answers; its endpoint."""
    t0 = time.monotonic()
    m.create_service(spec)
    task = poll(lambda: (running(m, spec["Name"]) or [None])[0], 60, f"{spec['Name']} running")
    t_run = time.monotonic() - t0
    ep = poll(lambda: endpoint(m.tasks(id=[task["ID"]])[0], 8080, addrs), 20, "PortStatus")
    poll(lambda: _reachable(ep), 20, f"{ep} answers")
    return t_run, time.monotonic() - t0, ep


def reach(lab: swarm.Lab, m: Engine) -> Facts:
    """(a) The control port from the host: host-mode ephemeral port at the node's address, vs the
    overlay IP (not routable from the host) vs a container attached to the overlay."""
    m.post("/networks/create", specs.overlay_network("spk-net"))
    addrs, facts = node_addrs(m), {}
    try:
        spec = specs.replica_service("spk-reach", network="spk-net")
        t_run, t_ans, ep = _create_and_reach(m, spec, addrs)
        task = running(m, "spk-reach")[0]
        facts["host_mode"] = {"endpoint": ep, "running_s": round(t_run, 2),
                              "answers_s": round(t_ans, 2), "answer": http_get(ep).strip(),
                              "port_status": task["Status"]["PortStatus"]}
        ip = overlay_ip(task, "spk-net")
        # Only the route is asked, no packet is sent: off the overlay, the host's default route
        # would carry the connection out of the machine.
        route = subprocess.run(["ip", "route", "get", str(ip)], capture_output=True, text=True,
                               check=False).stdout.split("\n")[0]
        facts["overlay_ip_from_host"] = {"ip": ip, "host_route": route}
        node = next(n for n in lab.nodes if n.ip == ep.split(":")[0])
        listen = subprocess.run(["nsenter", f"--net=/run/netns/{node.netns}", "ss", "-ltnH"],
                                capture_output=True, text=True, check=False).stdout
        facts["bound_on_node"] = [ln.split()[3] for ln in listen.splitlines()
                                  if ln.split()[3].endswith(ep.split(":")[1])]
        cmd = ["docker", "-H", lab.manager.socket, "run", "--rm", "--network", "spk-net",
               specs.BASE_IMAGE, "python3", "-c",
               f"import urllib.request;print(urllib.request.urlopen('http://{ip}:8080').read())"]
        t0 = time.monotonic()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        facts["attached_container"] = {"ok": out.returncode == 0, "seconds": round(
            time.monotonic() - t0, 2), "out": (out.stdout or out.stderr).strip()[-200:]}
    finally:
        m.remove_service("spk-reach")
        _remove_network(m, "spk-net")
    return facts


def overlay(lab: swarm.Lab, m: Engine) -> Facts:
    """(b) Replicas and a global HAProxy on one attachable overlay; HAProxy reaches replicas on
    other nodes by their task IPs; answers on every node; VIP vs dnsrr names inside the overlay."""
    m.post("/networks/create", specs.overlay_network("spk-ovl"))
    names = [f"spk-ovl-r{i}" for i in range(1, 4)]
    facts: Facts = {}
    try:
        for n in names:
            m.create_service(specs.replica_service(n, network="spk-ovl", control_port=None))
        m.create_service({**specs.replica_service("spk-vip", network="spk-ovl", control_port=None),
                          "EndpointSpec": {"Mode": "vip"}})
        tasks = {n: poll(lambda n=n: (running(m, n) or [None])[0], 60, n) for n in names}
        where = node_names(m)
        servers = [(n, f"{overlay_ip(t, 'spk-ovl')}:8080") for n, t in tasks.items()]
        facts["replicas"] = {n: {"node": where[t["NodeID"]], "ip": overlay_ip(t, "spk-ovl")}
                             for n, t in tasks.items()}
        cfg = m.post("/configs/create", specs.config_object(
            "spk-haproxy-1", specs.haproxy_config(18000, servers)))["ID"]
        t0 = time.monotonic()
        m.create_service(specs.haproxy_service("spk-ingress", network="spk-ovl", port=18000,
                                               config_id=cfg, config_name="spk-haproxy-1"))
        answers: dict[str, list[str]] = {}
        for node in lab.nodes:
            addr = f"{node.ip}:18000"
            poll(lambda a=addr: _reachable(a), 60, f"ingress on {addr}")
            answers[node.name] = sorted({http_get(addr).split()[0] for _ in range(9)})
        facts["ingress"] = {"answers_by_node": answers,
                            "all_nodes_s": round(time.monotonic() - t0, 2)}
        facts["names_inside_overlay"] = _resolve_inside(lab, "spk-ovl", names[0], "spk-vip")
    finally:
        for n in [*names, "spk-vip", "spk-ingress"]:
            m.remove_service(n)
        poll(lambda: _no_tasks(m, "spk-ingress"), 30, "ingress tasks gone")
        _remove_config(m, "spk-haproxy-1")
        _remove_network(m, "spk-ovl")
    return facts


def ingress_runtime(lab: swarm.Lab, m: Engine) -> Facts:
    """(b') Changing the ingress without replacing its tasks: server-template slots filled and
    drained through HAProxy's runtime API, on a host-mode admin port of every node."""
    net, reps, facts = "spk-rt", ["spk-rt1", "spk-rt2"], {}
    m.post("/networks/create", specs.overlay_network(net))
    try:
        for r in reps:
            m.create_service(specs.replica_service(r, network=net, control_port=None))
        tasks = {r: poll(lambda r=r: (running(m, r) or [None])[0], 60, r) for r in reps}
        text = specs.haproxy_config(18100, []).replace(
            "global\n", "global\n  stats socket ipv4@0.0.0.0:18101 level admin\n")
        text += "  server-template slot 1-4 0.0.0.0:8080 disabled\n"
        cfg = m.post("/configs/create", specs.config_object("spk-rt-cfg", text))["ID"]
        svc = specs.haproxy_service("spk-rt-ing", network=net, port=18100, config_id=cfg,
                                    config_name="spk-rt-cfg")
        svc["EndpointSpec"]["Ports"].append({"Protocol": "tcp", "TargetPort": 18101,
                                             "PublishedPort": 18101, "PublishMode": "host"})
        m.create_service(svc)
        for n in lab.nodes:
            poll(lambda n=n: _admin(n.ip, "show info"), 60, f"admin on {n.name}")
        before = sorted(t["ID"] for t in running(m, "spk-rt-ing"))
        t0 = time.monotonic()
        for n in lab.nodes:
            for i, t in enumerate(tasks.values(), 1):
                _admin(n.ip, f"set server replicas/slot{i} addr {overlay_ip(t, net)} port 8080")
                _admin(n.ip, f"set server replicas/slot{i} state ready")
        facts["set_2_slots_on_3_nodes_s"] = round(time.monotonic() - t0, 3)
        seen = {n.name: sorted(poll(lambda n=n: _answers(n.ip, 18100, set(reps)), 20, "both"))
                for n in lab.nodes}
        for n in lab.nodes:
            _admin(n.ip, "set server replicas/slot1 state drain")
        facts["answers"] = seen
        facts["after_drain_slot1"] = {n.name: sorted({http_get(f"{n.ip}:18100").split()[0]
                                                      for _ in range(8)}) for n in lab.nodes}
        facts["ingress_tasks_kept"] = before == sorted(t["ID"] for t in running(m, "spk-rt-ing"))
    finally:
        for s in [*reps, "spk-rt-ing"]:
            m.remove_service(s)
        poll(lambda: _no_tasks(m, "spk-rt-ing"), 30, "ingress tasks gone")
        _remove_config(m, "spk-rt-cfg")
        _remove_network(m, net)
    return facts


def _admin(ip: str, command: str) -> str:
    with socket.create_connection((ip, 18101), timeout=2) as s:
        s.sendall(command.encode() + b"\n")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
    return out.decode()


def _answers(ip: str, port: int, want: set[str]) -> set[str] | None:
    seen = {http_get(f"{ip}:{port}", timeout=1).split()[0] for _ in range(8)}
    return seen if seen == want else None


def _resolve_inside(lab: swarm.Lab, net: str, dnsrr: str, vip: str) -> Facts:
    probe = (
        "import socket,urllib.request\n"
        "def get(h):\n"
        "    try: return urllib.request.urlopen(f'http://{h}:8080', timeout=2).read().decode()\n"
        "    except Exception as e: return repr(e)[:80]\n"
        f"for h in ['{dnsrr}', 'tasks.{dnsrr}', '{vip}', 'tasks.{vip}']:\n"
        "    ips = sorted({a[4][0] for a in socket.getaddrinfo(h, 8080, proto=6)})\n"
        "    print(h, ips, get(h))\n"
    )
    cmd = ["docker", "-H", lab.manager.socket, "run", "--rm", "--network", net,
           specs.BASE_IMAGE, "python3", "-c", probe]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return {"out": (out.stdout + out.stderr).strip().splitlines()}


def create_times(lab: swarm.Lab, m: Engine, n: int = 30) -> Facts:
    """(c) Seconds to running: one replica service; N services at once; one service --replicas N."""
    addrs, singles = node_addrs(m), []
    for i in range(3):
        t_run, t_ans, _ = _create_and_reach(m, specs.replica_service(f"spk-one{i}"), addrs)
        singles.append((t_run, t_ans))
        m.remove_service(f"spk-one{i}")
    poll(lambda: all(_no_tasks(m, f"spk-one{i}") for i in range(3)), 60, "gone")
    facts: Facts = {"one_service_running_s": [round(a, 2) for a, _ in singles],
                    "one_service_answers_s": [round(b, 2) for _, b in singles]}
    names = [f"spk-many{i:02d}" for i in range(n)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda nm: m.create_service(specs.replica_service(nm)), names))
    t_api = time.monotonic() - t0
    poll(lambda: sum(t["Status"]["State"] == "running" for t in m.tasks(
        **{"desired-state": ["running"]}) if t["ServiceID"] in _ids(m, "spk-many")) >= n,
         300, f"{n} services running", interval=0.25)
    facts[f"{n}_services"] = {"api_s": round(t_api, 2),
                              "running_s": round(time.monotonic() - t0, 2),
                              "per_node": _spread(m, "spk-many")}
    _remove_prefix(m, "spk-many")
    t0 = time.monotonic()
    m.create_service(specs.replica_service("spk-rep", replicas=n))
    poll(lambda: len(running(m, "spk-rep")) >= n, 300, f"{n} replicas running", interval=0.25)
    facts[f"replicas_{n}"] = {"running_s": round(time.monotonic() - t0, 2),
                              "per_node": _spread(m, "spk-rep")}
    m.remove_service("spk-rep")
    poll(lambda: _no_tasks(m, "spk-rep"), 120, "spk-rep gone")
    facts["ratio_services_over_replicas"] = round(
        facts[f"{n}_services"]["running_s"] / facts[f"replicas_{n}"]["running_s"], 2)
    return facts


GPU = {"Reservations": {"GenericResources": [
    {"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}}]}}


def node_loss(lab: swarm.Lab, m: Engine, k: int = 3) -> Facts:
    """(d) Node k (the GPU node) stopped (dockerd down), then cut off (cable down, daemon alive),
    then stopped again with a 1 s dispatcher heartbeat: when the manager notices, what
    Node.Status and Task.Status say, when the replicas run elsewhere, what a GPU replica does
    with no GPU left."""
    facts = {}
    for how in ("daemon_stopped", "partitioned", "daemon_stopped_heartbeat_1s"):
        if how.endswith("1s"):
            _heartbeat(lab, "1s")
        facts[how] = _lose_node(lab, m, k, how)
        if how.endswith("1s"):
            _heartbeat(lab, "5s")
    return facts


def _heartbeat(lab: swarm.Lab, period: str) -> None:
    subprocess.run(["docker", "-H", lab.manager.socket, "swarm", "update",
                    "--dispatcher-heartbeat", period], check=True, capture_output=True)
    time.sleep(6)  # spike only: the agents take the new period with their next heartbeat


def _lose_node(lab: swarm.Lab, m: Engine, k: int, how: str) -> Facts:
    names = [f"spk-loss{i}" for i in range(6)]
    for nm in names:
        m.create_service(specs.replica_service(nm, control_port=None))
    m.create_service(specs.replica_service("spk-lossgpu", control_port=None, resources=GPU))
    poll(lambda: all(running(m, nm) for nm in [*names, "spk-lossgpu"]), 90, "replicas running")
    lost = {n["Description"]["Hostname"]: n["ID"] for n in m.nodes()}[lab.node(k).name]
    on_lost = [nm for nm in names for t in running(m, nm) if t["NodeID"] == lost]
    t0 = time.monotonic()
    if how.startswith("daemon_stopped"):
        swarm.stop_daemon(lab, k)
    else:
        pl.set_link(lab.name, k, up=False)
    t_cut, seen = time.monotonic() - t0, {}
    while time.monotonic() - t0 < 90 and len(seen) < 1 + len(on_lost):
        if "node_down" not in seen and _node_down(m, lost):
            seen["node_down"] = time.monotonic() - t0
        for nm in on_lost:
            if nm not in seen and any(t["NodeID"] != lost for t in running(m, nm)):
                seen[nm] = time.monotonic() - t0
        time.sleep(0.1)
    node = m.get(f"/nodes/{lost}")
    gpu_now = current_tasks(m, "spk-lossgpu")
    old = [t for nm in on_lost[:1] for t in m.tasks(service=[nm]) if t["NodeID"] == lost]
    facts: Facts = {
        "stop_s": round(t_cut, 2), "node_down_s": round(seen.get("node_down", -1), 2),
        "rescheduled_running_s": sorted(round(v, 2) for n, v in seen.items() if n != "node_down"),
        "replicas_on_lost_node": len(on_lost), "node_status": node["Status"],
        "old_task": [{"DesiredState": t["DesiredState"], "State": t["Status"]["State"],
                      "Message": t["Status"].get("Message")} for t in old],
        "gpu_replica_now": [{"node": (t.get("NodeID") == lost and "lost node") or t.get("NodeID"),
                             "DesiredState": t["DesiredState"], "State": t["Status"]["State"],
                             "Err": t["Status"].get("Err")} for t in gpu_now],
    }
    t0 = time.monotonic()
    if how.startswith("daemon_stopped"):
        swarm.start_daemon(lab, k)
        swarm.wait_daemon(lab, k)
    else:
        pl.set_link(lab.name, k, up=True)
    poll(lambda: not _node_down(m, lost), 120, "node ready again", interval=0.2)
    facts["back_ready_s"] = round(time.monotonic() - t0, 2)
    node_k = Engine(lab.node(k).socket)
    poll(lambda: not [c for c in node_k.get("/containers/json")
                      if c["Names"][0].startswith("/spk-loss") and not
                      c["Names"][0].startswith("/spk-lossgpu")], 60, "old containers gone")
    facts["old_containers_gone_after_back_s"] = round(time.monotonic() - t0, 2)
    poll(lambda: running(m, "spk-lossgpu"), 60, "gpu replica running again")
    facts["gpu_replica_running_after_back_s"] = round(time.monotonic() - t0, 2)
    _remove_prefix(m, "spk-loss")
    return facts


def _node_down(m: Engine, node_id: str) -> dict[str, Any] | None:
    node = m.get(f"/nodes/{node_id}")
    return node if node["Status"]["State"] != "ready" else None


def resources(lab: swarm.Lab, m: Engine) -> Facts:
    """(e) Reservations and limits, generic resources (GPUs), an unsatisfiable reservation."""
    facts: Facts = {"node_resources": {n["Description"]["Hostname"]: n["Description"]["Resources"]
                                       for n in m.nodes()}}
    res = {"Reservations": {"NanoCPUs": 500_000_000, "MemoryBytes": 64 << 20},
           "Limits": {"NanoCPUs": 1_000_000_000, "MemoryBytes": 128 << 20}}
    m.create_service(specs.replica_service("spk-res", resources=res, control_port=None))
    task = poll(lambda: (running(m, "spk-res") or [None])[0], 60, "spk-res")
    cid = task["Status"]["ContainerStatus"]["ContainerID"]
    node = next(n for n in lab.nodes if n.name == node_names(m)[task["NodeID"]])
    host = Engine(node.socket).get(f"/containers/{cid}/json")["HostConfig"]
    facts["limits_in_container"] = {k: host[k] for k in ("NanoCpus", "Memory", "CpuShares",
                                                         "MemoryReservation")}
    gpu = GPU
    gpus = [f"spk-gpu{i}" for i in range(3)]
    for g in gpus:
        m.create_service(specs.replica_service(g, resources=gpu, control_port=None))
    poll(lambda: sum(bool(running(m, g)) for g in gpus) >= 2, 60, "2 gpu replicas")
    time.sleep(3)  # spike only: give the scheduler a moment to (not) place the third
    gfacts = []
    for g in gpus:
        t = current_tasks(m, g)[0]
        cid = (t["Status"].get("ContainerStatus") or {}).get("ContainerID")
        env = None
        if cid:
            n = next(n for n in lab.nodes if n.name == node_names(m)[t["NodeID"]])
            env = [e for e in Engine(n.socket).get(f"/containers/{cid}/json")["Config"]["Env"]
                   if e.startswith("DOCKER_RESOURCE")]
        gfacts.append({"state": t["Status"]["State"],
                       "node": node_names(m).get(t.get("NodeID", "")),
                       "assigned": t.get("GenericResources"), "env": env,
                       "err": t["Status"].get("Err"), "message": t["Status"].get("Message")})
    facts["gpu_tasks"] = gfacts
    big = {"Reservations": {"MemoryBytes": 1 << 40}}
    m.create_service(specs.replica_service("spk-big", resources=big, control_port=None))
    t = poll(lambda: [t for t in current_tasks(m, "spk-big") if t["Status"].get("Err")], 30,
             "spk-big err")[0]
    facts["unsatisfiable"] = {"state": t["Status"]["State"], "err": t["Status"]["Err"],
                              "message": t["Status"]["Message"]}
    _remove_prefix(m, "spk-")
    return facts


def template_vs_labels(lab: swarm.Lab, m: Engine) -> Facts:
    """Changing ServiceSpec.Labels keeps the task; changing the task template replaces it."""
    m.create_service(specs.replica_service("spk-lbl", labels={"v": "1"}, control_port=None))
    first = poll(lambda: (running(m, "spk-lbl") or [None])[0], 60, "spk-lbl")["ID"]
    facts = {}
    for what, change in (("service_labels", lambda s: s["Labels"].update(v="2")),
                         ("container_env", lambda s: s["TaskTemplate"]["ContainerSpec"]["Env"]
                          .append("USER_CONFIG=2"))):
        svc = m.get("/services/spk-lbl")
        spec = svc["Spec"]
        change(spec)
        m.post("/services/spk-lbl/update", spec, version=svc["Version"]["Index"])
        time.sleep(3)  # spike only: long enough for a replacement to have started
        now = poll(lambda: (running(m, "spk-lbl") or [None])[0], 60, "spk-lbl")["ID"]
        facts[what] = {"same_task": now == first}
        first = now
    m.remove_service("spk-lbl")
    return facts


def events(lab: swarm.Lab, m: Engine) -> Facts:
    """(f) What `docker events` says about services and nodes (on the manager)."""
    since = time.time()
    m.create_service(specs.replica_service("spk-ev", control_port=None))
    poll(lambda: running(m, "spk-ev"), 60, "spk-ev")
    svc = m.get("/services/spk-ev")
    svc["Spec"]["Mode"]["Replicated"]["Replicas"] = 2
    m.post("/services/spk-ev/update", svc["Spec"], version=svc["Version"]["Index"])
    poll(lambda: len(running(m, "spk-ev")) == 2, 60, "2 running")
    m.remove_service("spk-ev")
    k = len(lab.nodes)
    swarm.stop_daemon(lab, k)
    poll(lambda: any(n["Status"]["State"] != "ready" for n in m.nodes()), 60, "a node down")
    swarm.start_daemon(lab, k)
    swarm.wait_daemon(lab, k)
    poll(lambda: all(n["Status"]["State"] == "ready" for n in m.nodes()), 60, "nodes ready")
    until = time.time() + 1
    seen = [{"t": round(e["time"] + e.get("timeNano", 0) % 10**9 / 1e9 - since, 2),
             "type": e["Type"], "action": e["Action"],
             "attrs": e["Actor"]["Attributes"]}
            for e in m.events(since, until, type=["service", "node", "container"])]
    return {"events": seen}


def seeding(lab: swarm.Lab, m: Engine) -> Facts:
    """Images onto the nodes: docker save | docker load vs a push to the lab registry and a pull."""
    facts: Facts = {}
    size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", specs.BASE_IMAGE],
                              capture_output=True, text=True, check=True).stdout)
    facts["image_mb"] = round(size / 1e6, 1)
    t0 = time.monotonic()
    subprocess.run(f"docker save {specs.BASE_IMAGE} | docker -H {lab.node(2).socket} load -q",
                   shell=True, check=True, capture_output=True)
    facts["save_load_one_node_s"] = round(time.monotonic() - t0, 2)
    facts["save_then_parallel_load_all_nodes_s"] = round(swarm.load_image(lab, specs.BASE_IMAGE), 2)
    ref = f"{lab.registry}/spike/python:bookworm"
    d = lambda k, *a: subprocess.run(["docker", "-H", lab.node(k).socket, *a],  # noqa: E731
                                     capture_output=True, text=True, check=True)
    d(1, "tag", specs.BASE_IMAGE, ref)
    t0 = time.monotonic()
    d(1, "push", ref)
    facts["push_base_from_manager_s"] = round(time.monotonic() - t0, 2)
    d(2, "rmi", "-f", specs.BASE_IMAGE)
    t0 = time.monotonic()
    d(2, "pull", "-q", ref)
    facts["pull_base_on_worker_s"] = round(time.monotonic() - t0, 2)
    d(2, "tag", ref, specs.BASE_IMAGE)
    build = f"FROM {specs.BASE_IMAGE}\nRUN echo v2 > /version\n"
    t0 = time.monotonic()
    subprocess.run(["docker", "-H", lab.manager.socket, "build", "-q", "-t", f"{ref}-v2", "-"],
                   input=build, text=True, check=True, capture_output=True)
    d(1, "push", f"{ref}-v2")
    facts["build_and_push_derived_s"] = round(time.monotonic() - t0, 2)
    t0 = time.monotonic()
    d(3, "pull", "-q", f"{ref}-v2")
    facts["pull_derived_on_worker_s"] = round(time.monotonic() - t0, 2)
    # The Engine API pins nothing itself (the CLI does, through the distribution endpoint):
    image_of = lambda sid: m.get(f"/services/{sid}")["Spec"]["TaskTemplate"][  # noqa: E731
        "ContainerSpec"]["Image"]
    sid = m.create_service(specs.replica_service("spk-reg", image=f"{ref}-v2", control_port=None))
    facts["image_in_spec_via_api"] = image_of(sid)
    m.remove_service(sid)
    t0 = time.monotonic()
    digest = m.get(f"/distribution/{ref}-v2/json")["Descriptor"]["digest"]
    facts["distribution_lookup_s"] = round(time.monotonic() - t0, 3)
    sid = m.create_service(specs.replica_service("spk-reg2", image=f"{ref}-v2@{digest}",
                                                 control_port=None))
    task = poll(lambda: (running(m, "spk-reg2") or [None])[0], 120, "pinned task running")
    facts["pinned_task"] = {"image": task["Spec"]["ContainerSpec"]["Image"],
                            "node": node_names(m)[task["NodeID"]]}
    m.remove_service(sid)
    return facts


def _no_tasks(m: Engine, service: str) -> bool:
    try:
        return not m.tasks(service=[service])
    except EngineError as exc:
        return exc.status == 404


def _ids(m: Engine, prefix: str) -> set[str]:
    return {s["ID"] for s in m.services() if s["Spec"]["Name"].startswith(prefix)}


def _spread(m: Engine, prefix: str) -> dict[str, int]:
    names, ids, out = node_names(m), _ids(m, prefix), {}
    for t in m.tasks(**{"desired-state": ["running"]}):
        if t["ServiceID"] in ids and t["Status"]["State"] == "running":
            out[names[t["NodeID"]]] = out.get(names[t["NodeID"]], 0) + 1
    return dict(sorted(out.items()))


def _remove_prefix(m: Engine, prefix: str) -> None:
    for s in m.services():
        if s["Spec"]["Name"].startswith(prefix):
            m.remove_service(s["ID"])
    poll(lambda: not [t for t in m.tasks() if t["Status"]["State"] in ("running", "starting")
                      and t["ServiceID"] in _ids(m, prefix)] , 120, f"{prefix}* gone")


def _remove_network(m: Engine, name: str) -> None:
    poll(lambda: _try_delete(m, f"/networks/{name}"), 60, f"network {name} removed", interval=0.5)


def _remove_config(m: Engine, name: str) -> None:
    poll(lambda: _try_delete(m, f"/configs/{name}"), 60, f"config {name} removed", interval=0.5)


def _try_delete(m: Engine, path: str) -> bool:
    try:
        m.delete(path)
    except EngineError as exc:
        return exc.status == 404
    return True


SECTIONS: dict[str, Callable[[swarm.Lab, Engine], Facts]] = {
    "reach": reach, "overlay": overlay, "runtime": ingress_runtime, "create": create_times,
    "loss": node_loss, "resources": resources, "template": template_vs_labels,
    "events": events, "seeding": seeding,
}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="spike")
    p.add_argument("--only", default=",".join(SECTIONS))
    p.add_argument("--out")
    args = p.parse_args()
    lab = swarm.Lab.load(args.name)
    if lab is None:
        print(f"lab {args.name} is not up", file=sys.stderr)
        return 1
    m = Engine(lab.manager.socket, timeout=60)
    with open("/proc/loadavg") as f:
        results: Facts = {"load_avg": f.read().split()[:3]}
    for name in args.only.split(","):
        t0 = time.monotonic()
        results[name] = SECTIONS[name](lab, m)
        results[name]["section_s"] = round(time.monotonic() - t0, 1)
        print(json.dumps({name: results[name]}, indent=1, default=str), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
