"""A multi-node Docker Swarm on this one machine, with no internet.

Each node is a `dockerd` in a network namespace of its own (entered with `nsenter --net`: `ip netns
exec` remounts /sys, hides the cgroup mounts and dockerd refuses), with its own data root, exec
root, pidfile, socket and cgroup parent under /run/swarm-lab/NAME/nodeK, cabled by a veth pair
to a bridge on the host. Node 1 is the manager, the others join as workers. A local registry
(Debian's `docker-registry`) listens on the bridge address, and the base image is copied onto
every node with `docker save | docker load` (both in tests/swarm/registry.py). Every object
carries the lab's name; `down` removes them all, and `up` cleans up a broken lab of the same name
first. Nothing of the host's own engine is touched. Standard library only: `scripts/swarm-lab`
runs this on the system python3.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.swarm import plumbing as pl
from tests.swarm import registry
from tests.swarm.engine import Engine
from tests.swarm.plumbing import LabError, run

ROOT = Path("/run/swarm-lab")
NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")
BASE_IMAGE = "serve-reconciler/python:bookworm"
SUBNET = "10.199.{}.0/24"  # one /24 per lab; the third octet is picked free at `up`
ADDR_POOL = "10.200.0.0/16"  # the swarm's overlays, well away from the bridge subnets
TMPFS_SIZE = "8g"  # a ceiling, not a reservation: a 3-node lab with the base image uses ~0.8 GB


@dataclass
class Node:
    index: int
    name: str  # the node's hostname in the swarm (each dockerd has a UTS namespace of its own)
    ip: str
    dir: str
    netns: str
    generic_resources: list[str] = field(default_factory=list)

    @property
    def socket(self) -> str:
        return f"unix://{self.dir}/docker.sock"

    @property
    def pidfile(self) -> Path:
        return Path(self.dir, "docker.pid")


@dataclass
class Lab:
    name: str
    octet: int
    nodes: list[Node]
    registry: str  # host:port of the lab registry, as the nodes reach it (plain HTTP)
    image: str | None
    owner_pid: int | None = None  # a test session's lab: swept once that process is gone

    @property
    def dir(self) -> Path:
        return ROOT / self.name

    @property
    def host_ip(self) -> str:
        return f"10.199.{self.octet}.1"

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def cgroup_parent(self) -> str:
        return f"/swarm-lab-{self.name}"

    def node(self, k: int) -> Node:
        return self.nodes[k - 1]

    def docker(self, k: int, *args: str, timeout: float = 120.0) -> str:
        return run(["docker", "-H", self.node(k).socket, *args], timeout=timeout)

    def save(self) -> None:
        (self.dir / "lab.json").write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, name: str) -> Lab | None:
        try:
            raw = json.loads((ROOT / name / "lab.json").read_text())
        except (OSError, ValueError):
            return None
        raw["nodes"] = [Node(**n) for n in raw["nodes"]]
        return cls(**raw)


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise LabError(f"lab name {name!r}: 1 to 8 characters, a-z then a-z0-9 (it goes into "
                       "interface names, which stop at 15 characters)")
    return name


@contextmanager
def _locked() -> Iterator[None]:
    """One `up` at a time picks a subnet (so two labs started together never share one), and
    `down` removes ROOT only under the lock: a lock on ROOT itself, which leaves no file."""
    while True:
        ROOT.mkdir(parents=True, exist_ok=True)
        fd = os.open(ROOT, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if ROOT.exists() and os.stat(ROOT).st_ino == os.fstat(fd).st_ino:
                yield
                return
        finally:
            os.close(fd)  # (the lock goes with it)


def _free_octet(name: str) -> int:
    taken = {lab.octet for lab in (Lab.load(p.name) for p in ROOT.iterdir() if p.is_dir()) if lab}
    addrs = run(["ip", "-4", "-o", "addr", "show"], check=False)
    taken |= {int(m) for m in re.findall(r"inet 10\.199\.(\d+)\.", addrs)}
    start = zlib.crc32(name.encode()) % 250
    for i in range(250):
        octet = (start + i) % 250 + 1
        if octet not in taken:
            return octet
    raise LabError("no free 10.199.x.0/24 subnet left for another lab")


# -- up ------------------------------------------------------------------------------------------


def up(name: str, nodes: int = 3, image: str | None = BASE_IMAGE,
       generic: dict[int, list[str]] | None = None, log: bool = True,
       owner_pid: int | None = None, heartbeat: str | None = None) -> Lab:
    """Bring lab NAME up (idempotent: a healthy lab is left as it is, a broken one rebuilt).
    `heartbeat` sets the dispatcher heartbeat (Docker's default 5s: a stopped node is down for
    the manager after about 14 s; with 1s, about 2 s)."""
    check_name(name)
    if not 1 <= nodes <= 9:
        raise LabError(f"--nodes {nodes}: 1 to 9")
    say = _sayer(log)
    existing = Lab.load(name)
    if existing and len(existing.nodes) == nodes and healthy(existing):
        say(f"lab {name} is already up ({nodes} nodes)")
        return existing
    if existing or (ROOT / name).exists() or pl.lab_netns(name) or pl.lab_rules(name):
        say(f"lab {name}: cleaning up what a previous run left")
        down(name, log=False)
    try:
        lab = _claim(name, owner_pid)
        _build(lab, nodes, image, generic or {}, say, heartbeat)
    except BaseException:
        say(f"lab {name}: up failed, cleaning up")
        down(name, log=False)  # (outside the lock: `down` takes it too)
        raise
    return lab


def _claim(name: str, owner_pid: int | None) -> Lab:
    """Under the lock: a free subnet, the lab's directory (a tmpfs), lab.json and the bridge."""
    with _locked():
        octet = _free_octet(name)
        lab = Lab(name=name, octet=octet, nodes=[], registry=f"10.199.{octet}.1:5000", image=None,
                  owner_pid=owner_pid)
        lab.dir.mkdir(parents=True)
        # The nodes' data roots on a tmpfs of the lab's own: image loads skip the disk, and
        # `down` is an unmount instead of deleting three copies of every image file by file.
        run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", f"swarm-lab-{name}",
             str(lab.dir)])
        lab.save()  # from here on `down` finds everything by the names in lab.json
        pl.make_bridge(name, f"{lab.host_ip}/24")
        lab.registry = f"{lab.host_ip}:{registry.free_port(lab.host_ip)}"
        lab.save()
    return lab


def _build(lab: Lab, count: int, image: str | None, generic: dict[int, list[str]], say,  # type: ignore[no-untyped-def]
           heartbeat: str | None) -> None:
    t0 = time.monotonic()
    registry.start(lab.dir / "registry", lab.registry)
    for k in range(1, count + 1):
        node_dir = lab.dir / f"node{k}"
        node = Node(index=k, name=f"{lab.name}-node{k}", ip=f"10.199.{lab.octet}.{10 + k}",
                    dir=str(node_dir), netns=pl.netns_name(lab.name, k),
                    generic_resources=generic.get(k, []))
        lab.nodes.append(node)
        lab.save()
        pl.make_node_netns(lab.name, k, f"{node.ip}/24")
        start_daemon(lab, k)
    for k in range(1, count + 1):
        wait_daemon(lab, k)
    say(f"lab {lab.name}: {count} daemons answer ({time.monotonic() - t0:.1f}s)")
    _form_swarm(lab, heartbeat)
    say(f"lab {lab.name}: swarm formed, {count} nodes Ready ({time.monotonic() - t0:.1f}s)")
    if image:
        seconds = load_image(lab, image)
        lab.image = image
        lab.save()
        say(f"lab {lab.name}: {image} loaded on every node ({seconds:.1f}s)")


def _form_swarm(lab: Lab, heartbeat: str | None) -> None:
    m = lab.manager
    extra = ["--dispatcher-heartbeat", heartbeat] if heartbeat else []
    lab.docker(1, "swarm", "init", "--advertise-addr", m.ip, "--listen-addr", f"{m.ip}:2377",
               "--default-addr-pool", ADDR_POOL, "--default-addr-pool-mask-length", "24", *extra)
    token = lab.docker(1, "swarm", "join-token", "-q", "worker").strip()
    for node in lab.nodes[1:]:
        lab.docker(node.index, "swarm", "join", "--token", token, "--advertise-addr", node.ip,
                   "--listen-addr", f"{node.ip}:2377", f"{m.ip}:2377")
    _poll(lambda: len(ready_nodes(lab)) == len(lab.nodes), 60, "every node Ready")
    if ipvs_missing():
        # No IPVS, no routing mesh: without the ingress network a service that asks for the mesh
        # fails at create ("service needs ingress network") instead of never answering, and a
        # dockerd stops in ~2 s instead of waiting 5 s for the ingress sandbox to go.
        Engine(lab.manager.socket).delete("/networks/ingress")  # (the CLI asks y/N first)
    for node_id, hostname in ready_nodes(lab).items():
        label = f"lab.node={hostname.rsplit('-', 1)[1]}"
        lab.docker(1, "node", "update", "--label-add", label, node_id)


def ipvs_missing() -> str | None:
    """Why this kernel has no routing mesh, if it has none (Swarm's VIPs and mesh need IPVS)."""
    config = Path("/proc/config.gz")
    if config.exists():
        text = gzip.decompress(config.read_bytes()).decode(errors="replace")
        if "CONFIG_IP_VS=y" not in text and "CONFIG_IP_VS=m" not in text:
            return "this kernel has no IPVS (CONFIG_IP_VS unset): no routing mesh, no service VIPs"
    return None


def _daemon_argv(lab: Lab, node: Node) -> list[str]:
    d = Path(node.dir)
    # Our own config, so the host's /etc/docker/daemon.json is not read, and a trust key of the
    # node's own: with the host's /etc/docker/key.json every node had the host engine's ID.
    config = d / "daemon.json"
    config.write_text(json.dumps({"deprecated-key-path": str(d / "key.json")}) + "\n")
    argv = [
        "dockerd", "--config-file", str(config),
        "--data-root", str(d / "data"), "--exec-root", str(d / "exec"),
        "--pidfile", str(node.pidfile), "-H", node.socket,
        "--cgroup-parent", f"{lab.cgroup_parent}/node{node.index}",
        "--iptables", "--ip-forward",
        "--insecure-registry", lab.registry,
    ]
    for spec in node.generic_resources:
        argv += ["--node-generic-resource", spec]
    return argv


def start_daemon(lab: Lab, k: int) -> None:
    """Start node k's dockerd in its namespace, in a session of its own (no signal of a shell or
    a test reaches it), with a hostname of its own so `docker node ls` tells the nodes apart."""
    node = lab.node(k)
    Path(node.dir).mkdir(parents=True, exist_ok=True)
    argv = _daemon_argv(lab, node)
    inner = f"hostname {node.name} && exec {shlex.join(argv)}"
    with open(Path(node.dir, "dockerd.log"), "ab") as out:
        subprocess.Popen(
            ["nsenter", f"--net={pl.NETNS_DIR / node.netns}", "unshare", "--uts",
             "sh", "-c", inner],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )


def wait_daemon(lab: Lab, k: int, timeout: float = 60.0) -> None:
    node = lab.node(k)

    def answers() -> bool:
        done = subprocess.run(["docker", "-H", node.socket, "version"], capture_output=True,
                              check=False, timeout=20)
        return done.returncode == 0

    try:
        _poll(answers, timeout, f"dockerd of {node.name}")
    except LabError as exc:
        tail = Path(node.dir, "dockerd.log").read_text(errors="replace").splitlines()[-15:]
        raise LabError(f"{exc}\n  " + "\n  ".join(tail)) from None


def stop_daemon(lab: Lab, k: int, grace: float = 20.0) -> None:
    """Stop node k's dockerd (a node lost: its containers stop with it)."""
    pid = pl.read_pid(lab.node(k).pidfile)
    if pid is not None:
        pl.stop_pids([pid], grace=grace)


def load_image(lab: Lab, image: str) -> float:
    """Copy a host-engine image onto every node of the lab; the seconds it took."""
    return registry.load_image([n.socket for n in lab.nodes], image, lab.dir)


# -- status and down -----------------------------------------------------------------------------


def ready_nodes(lab: Lab) -> dict[str, str]:
    """Node id -> hostname of the nodes the manager reports Ready."""
    out = lab.docker(1, "node", "ls", "--format", "{{.ID}} {{.Hostname}} {{.Status}}", timeout=20)
    return {i: h for i, h, s in (line.split() for line in out.splitlines()) if s == "Ready"}


def healthy(lab: Lab) -> bool:
    try:
        return len(ready_nodes(lab)) == len(lab.nodes) and all(
            pl.alive(pl.read_pid(n.pidfile) or 0) for n in lab.nodes)
    except (LabError, OSError, ValueError):
        return False


def labs() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir()) if ROOT.is_dir() else []


def sweep_orphans(log: bool = True) -> list[str]:
    """Take down the labs of test sessions that are gone (a crash, a kill -9)."""
    swept = []
    for name in labs():
        lab = Lab.load(name)
        if lab and lab.owner_pid and not pl.alive(lab.owner_pid):
            down(name, log=log)
            swept.append(name)
    return swept


def down(name: str, log: bool = True) -> str:
    """Remove everything of lab NAME: daemons, their containers, registry, mounts, cgroups,
    namespaces, veths, bridge, iptables rule, directory. Safe on a half-built or crashed lab.
    Returns a one-line account of what it did."""
    check_name(name)
    say = _sayer(log)
    t0 = time.monotonic()
    lab_dir = ROOT / name
    lab = Lab.load(name)
    daemons = [p for p in (pl.read_pid(n.pidfile) for n in lab.nodes) if p] if lab else []
    killed = pl.stop_pids(daemons, grace=20.0)  # a dockerd stops its containers itself
    t_daemons = time.monotonic() - t0
    cgroup = f"/swarm-lab-{name}"
    leftovers = pl.pids_of_lab(lab_dir, cgroup, pl.lab_netns(name))  # the registry, strays
    pl.stop_pids(leftovers, grace=5.0)
    pl.unmount_all(lab_dir)
    pl.remove_cgroups(cgroup)
    removed = pl.remove_network(name)
    shutil.rmtree(lab_dir, ignore_errors=True)
    if lab_dir.exists():
        raise LabError(f"{lab_dir} could not be removed: {pl.mounts_under(lab_dir)}")
    with _locked(), contextlib.suppress(OSError):
        ROOT.rmdir()  # the last lab gone: nothing of the lab stays on the machine
    account = (f"lab {name} is down in {time.monotonic() - t0:.1f}s: {len(daemons)} daemons "
               f"stopped in {t_daemons:.1f}s ({killed} killed), {len(leftovers)} other processes, "
               f"{len(removed)} network objects removed")
    say(account)
    return account


def leftovers(name: str) -> list[str]:
    """Whatever of lab NAME is still on the machine (empty after a clean `down`)."""
    lab_dir = ROOT / name
    found = [f"netns {ns}" for ns in pl.lab_netns(name)]
    found += [f"link {dev}" for dev in (pl.bridge_name(name), *(pl.veth_name(name, k)
                                                              for k in range(1, 10)))
              if pl.link_exists(dev)]
    found += [f"iptables {' '.join(r)}" for r in pl.lab_rules(name)]
    found += [f"process {p}" for p in pl.pids_of_lab(lab_dir, f"/swarm-lab-{name}", [])]
    found += [f"mount {m}" for m in pl.mounts_under(lab_dir)]
    found += [f"cgroup {c}" for c in pl.cgroups_of(f"/swarm-lab-{name}")]
    found += [f"directory {lab_dir}"] if lab_dir.exists() else []
    return found


def _poll(probe, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not _try(probe):
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


def _try(probe) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(probe())
    except (LabError, OSError, subprocess.SubprocessError):
        return False  # not up yet


def _sayer(log: bool):  # type: ignore[no-untyped-def]
    def say(msg: str) -> None:
        if log:
            print(f"swarm-lab: {msg}", flush=True)
    return say
