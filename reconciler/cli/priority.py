"""The daemon's CPU priority (`reconciler run --nice N`).

A nice value alone is not enough on most Linux kernels: with autogroup on
(`/proc/sys/kernel/sched_autogroup_enabled`), tasks in the root CPU cgroup are first grouped by
session, the CPU is shared between the groups, and nice only ranks a task within its own group.
A daemon at nice -10 in the shell session that also started dockerd outranks dockerd and nothing
else: while a 100-replica rollout ran, its `GET /status` p99 was 33-36 ms; with its own session's
group at nice -10 as well, 7-10 ms. So `--nice N` sets the session's group too when the daemon leads
its session (as a service does, or under `setsid`), and otherwise says why N will count for less
than asked. Under a systemd unit or in a container the daemon usually has a CPU cgroup of its own:
autogroup does not apply, and what ranks the daemon against the replicas' containers is the
cgroup's weight (systemd `CPUWeight=`, `docker run --cpu-shares`), which it says too.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("reconciler.run")

_AUTOGROUP_ENABLED = Path("/proc/sys/kernel/sched_autogroup_enabled")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_AUTOGROUP_TRIES = 5
_OWN_CGROUP = Path("/proc/self/cgroup")
_OWN_AUTOGROUP = Path("/proc/self/autogroup")


def set_priority(nice: int) -> None:
    """Set this thread's nice value (Linux: threads created afterwards inherit it) and, where
    the kernel groups by session and this process leads its session, the group's. Without the
    privilege to raise either, say so and carry on at the priority we have."""
    if nice == 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        log.warning(
            "cannot set --nice %d (%s): raising priority needs root or CAP_SYS_NICE; "
            "running at nice %d",
            nice,
            exc.strerror or exc,
            os.getpriority(os.PRIO_PROCESS, 0),
        )
        return
    group = scheduling_group(_read(_AUTOGROUP_ENABLED), _read(_OWN_CGROUP), _CGROUP_ROOT)
    if group == "cgroup":
        log.info(
            "--nice %d ranks the daemon within its own CPU cgroup; for it to count against the "
            "replicas' containers, weigh the cgroup too (systemd CPUWeight=, docker run "
            "--cpu-shares)",
            nice,
        )
    elif group == "session" and os.getsid(0) != os.getpid():
        log.warning(
            "--nice %d ranks the daemon only among the processes of its session: this kernel "
            "shares the CPU between sessions first (autogroup). Start the daemon in a session "
            "of its own (as a service, or `setsid -w reconciler run ...`, which leaves it no "
            "terminal) for it to count against container starts",
            nice,
        )
    elif group == "session":
        _set_autogroup_nice(nice)


def _set_autogroup_nice(nice: int) -> None:
    # Without CAP_SYS_ADMIN the kernel takes one such write a tenth of a second, machine-wide.
    for attempt in range(_AUTOGROUP_TRIES):
        try:
            _OWN_AUTOGROUP.write_text(f"{nice}\n")
            return
        except BlockingIOError:
            if attempt + 1 < _AUTOGROUP_TRIES:
                time.sleep(0.1)
        except OSError as exc:
            log.warning(
                "cannot set the session's CPU group to nice %d (%s): --nice counts only within it",
                nice,
                exc.strerror or exc,
            )
            return
    log.warning("cannot set the session's CPU group to nice %d: the kernel kept refusing", nice)


def scheduling_group(autogroup_enabled: str, cgroup: str, cgroup_root: Path) -> str:
    """How the kernel groups this process's tasks before nice ranks them: 'cgroup' (a CPU cgroup
    of its own), 'session' (autogroup: the root CPU cgroup, autogroup on) or '' (neither: nice
    counts machine-wide). `autogroup_enabled` is the sysctl's text, `cgroup` /proc/self/cgroup's
    (v1 lines name the `cpu` controller; v2 has one `0::PATH` line, and its cgroup has a CPU
    weight only where the controller is enabled: not at the root, nor where it is switched off,
    and a container's cgroup namespace shows its own cgroup as `/`)."""
    cpu_path = unified = None
    for line in cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if "cpu" in controllers.split(","):
            cpu_path = path.strip()
        elif controllers == "":
            unified = path.strip()
    if cpu_path is not None:
        in_root = cpu_path == "/"
    elif unified is not None:
        in_root = not (cgroup_root / unified.lstrip("/") / "cpu.weight").exists()
    else:
        return ""  # no cgroup information: say nothing
    if not in_root:
        return "cgroup"
    return "session" if autogroup_enabled.strip() == "1" else ""


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
