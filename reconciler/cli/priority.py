"""The daemon's CPU priority (`reconciler run --nice N`).

A nice value alone is not enough on most Linux kernels: with autogroup on
(`/proc/sys/kernel/sched_autogroup_enabled`), tasks in the root CPU cgroup are first grouped by
session, the CPU is shared between the groups, and nice only ranks a task within its own group.
A daemon at nice -10 in the shell session that also started dockerd outranks dockerd and nothing
else: while a 100-replica rollout ran, its `GET /status` p99 was 33-36 ms; with its own session's
group at nice -10 as well, 8-10 ms. So `--nice N` sets the session's group too when the daemon leads
its session (as under a service manager, or `setsid`), and otherwise says why N will count for
less than asked. Under a systemd unit or in a container the daemon has a cgroup of its own and
autogroup does not apply.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("reconciler.run")

_AUTOGROUP_ENABLED = Path("/proc/sys/kernel/sched_autogroup_enabled")
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
    if not scheduled_by_session(_read(_AUTOGROUP_ENABLED), _read(_OWN_CGROUP)):
        return
    if os.getsid(0) != os.getpid():
        log.warning(
            "--nice %d ranks the daemon only among the processes of its session: this kernel "
            "shares the CPU between sessions first (autogroup). Start the daemon in a session "
            "of its own (`setsid reconciler run ...`, or as a service) for it to count against "
            "container starts",
            nice,
        )
        return
    try:
        _OWN_AUTOGROUP.write_text(f"{nice}\n")
    except OSError as exc:
        log.warning(
            "cannot set the session's CPU group to nice %d (%s): --nice counts only within it",
            nice,
            exc.strerror or exc,
        )


def scheduled_by_session(autogroup_enabled: str, cgroup: str) -> bool:
    """True when the kernel groups this process's tasks by session: autogroup is on
    (`autogroup_enabled` is the sysctl's text) and the process sits in the root CPU cgroup
    (`cgroup` is /proc/self/cgroup's text; v1 lines name the `cpu` controller, v2 has one
    `0::PATH` line)."""
    if autogroup_enabled.strip() != "1":
        return False
    unified = None
    for line in cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if "cpu" in controllers.split(","):
            return path.strip() == "/"
        if controllers == "":
            unified = path.strip()
    return unified == "/"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
