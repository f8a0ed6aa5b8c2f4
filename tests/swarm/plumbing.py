"""Host plumbing of the swarm lab: network namespaces, veths, a bridge, one iptables rule, mounts,
cgroups and processes, each found by the lab's unique names so that cleanup never reaches past
what one lab made. Standard library only (the lab script runs on the system's python3)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class LabError(RuntimeError):
    """A lab step failed; the message says which and how."""


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 120.0, **kw: object) -> str:
    """Run a command, return its stdout; on failure raise with the command and its stderr."""
    try:
        done = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False, **kw  # type: ignore[call-overload]
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(cmd)}: no answer in {timeout:.0f}s") from exc
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()}")
    return str(done.stdout)


# -- names: every object of lab NAME carries NAME, so two labs never collide ---------------------


def netns_name(lab: str, k: int) -> str:
    return f"swl-{lab}-{k}"


def bridge_name(lab: str) -> str:
    return f"swlb-{lab}"  # interface names stop at 15 characters: lab names at 8


def veth_name(lab: str, k: int) -> str:
    return f"swlv-{lab}-{k}"


def rule_comment(lab: str) -> str:
    return f"swarm-lab:{lab}"


# -- network -------------------------------------------------------------------------------------


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def make_bridge(lab: str, host_cidr: str) -> None:
    br = bridge_name(lab)
    run(["ip", "link", "add", br, "type", "bridge"])
    run(["ip", "addr", "add", host_cidr, "dev", br])
    run(["ip", "link", "set", br, "up"])
    # The host engine sets FORWARD's policy to DROP and br_netfilter sends bridged frames through
    # it: without this rule the nodes cannot reach each other and `swarm join` times out.
    comment = ["-m", "comment", "--comment", rule_comment(lab)]
    run(["iptables", "-I", "FORWARD", "-i", br, "-o", br, *comment, "-j", "ACCEPT"])


def make_node_netns(lab: str, k: int, node_cidr: str) -> None:
    """Node k's namespace, cabled to the lab bridge. No default route, on purpose: the swarm agent
    tries to pull every task's image first (from Docker Hub for a plain name), and with no route
    that fails at once and the local image is used; with one, the DNS lookup hangs for 30 s."""
    ns, veth = netns_name(lab, k), veth_name(lab, k)
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth, "master", bridge_name(lab), "up"])
    inside = ["ip", "-n", ns]
    run([*inside, "link", "set", "lo", "up"])
    run([*inside, "addr", "add", node_cidr, "dev", "eth0"])
    run([*inside, "link", "set", "eth0", "up"])


def set_link(lab: str, k: int, up: bool) -> None:
    """Cut or restore node k's cable (a network partition: its daemon and tasks keep running)."""
    run(["ip", "link", "set", veth_name(lab, k), "up" if up else "down"])


def lab_netns(lab: str) -> list[str]:
    prefix = f"swl-{lab}-"
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def remove_network(lab: str) -> list[str]:
    """Delete the lab's namespaces, veths, bridge and iptables rules; return what was removed."""
    removed: list[str] = []
    for ns in lab_netns(lab):
        run(["ip", "netns", "del", ns], check=False)
        removed.append(f"netns {ns}")
    for dev in sorted(os.listdir("/sys/class/net")):
        if dev.startswith(f"swlv-{lab}-") or dev == bridge_name(lab):
            run(["ip", "link", "del", dev], check=False)
            removed.append(f"link {dev}")
    for rule in lab_rules(lab):
        run(["iptables", "-D", *rule[1:]], check=False)
        removed.append(f"iptables {shlex.join(rule)}")
    return removed


def lab_rules(lab: str) -> list[list[str]]:
    """The lab's rules in the host's FORWARD chain, as `iptables -S` prints them, split."""
    out = run(["iptables", "-S", "FORWARD"], check=False)
    rules = [shlex.split(line) for line in out.splitlines()]
    return [r for r in rules if rule_comment(lab) in r and r[:1] == ["-A"]]


# -- processes -----------------------------------------------------------------------------------


def pids_of_lab(lab_dir: Path, cgroup_parent: str, namespaces: Iterable[str]) -> set[int]:
    """Processes that belong to the lab: started with a path under its directory, in one of its
    cgroups (the nodes' containers), or in one of its network namespaces."""
    mine: set[int] = set()
    needle = str(lab_dir).encode() + b"/"
    for ns in namespaces:
        out = run(["ip", "netns", "pids", ns], check=False)
        mine.update(int(p) for p in out.split() if p.isdigit())
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path("/proc", entry, "cmdline").read_bytes()
            cgroups = Path("/proc", entry, "cgroup").read_text()
        except OSError:
            continue  # gone meanwhile
        if needle in cmdline.replace(b"\0", b" ") or f":{cgroup_parent}/" in cgroups:
            mine.add(int(entry))
    return mine


def alive(pid: int) -> bool:
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_pids(pids: Iterable[int], *, grace: float) -> int:
    """SIGTERM, then SIGKILL what is still there after `grace` seconds; return how many needed
    the SIGKILL."""
    pids = [p for p in pids if alive(p)]
    killed = 0
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + grace
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = [p for p in pids if alive(p)]
        if not pids:
            break
        killed, grace = len(pids), 5.0
    return killed


def read_pid(pidfile: Path) -> int | None:
    """The pid a daemon wrote to `pidfile`, only while that process is the one started with it
    (its command line names the pidfile): this machine's pid_max is 32768, so a stale pidfile of
    a crashed lab soon names some other process, once the host's own dockerd."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path("/proc", str(pid), "cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and str(pidfile).encode() in cmdline else None


# -- mounts and cgroups --------------------------------------------------------------------------


def mounts_under(root: Path) -> list[str]:
    """Mount points below `root`, deepest first (the order to unmount them)."""
    prefix = str(root).rstrip("/") + "/"
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix) or point == str(root):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_all(root: Path) -> None:
    for point in mounts_under(root):
        if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def remove_cgroups(cgroup_parent: str) -> None:
    """rmdir the nodes' cgroups (empty once their processes are gone), deepest first."""
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
        top = hierarchy / cgroup_parent.lstrip("/")
        if not top.is_dir():
            continue
        dirs = [Path(d) for d, _, _ in os.walk(top)]
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()


def cgroups_of(cgroup_parent: str) -> list[str]:
    hierarchies = CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else iter(())
    return [str(h / cgroup_parent.lstrip("/")) for h in hierarchies
            if (h / cgroup_parent.lstrip("/")).is_dir()]
