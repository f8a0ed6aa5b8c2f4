"""How the kernel groups the daemon's tasks before nice ranks them, so that `--nice` knows
whether to set the session's group too (autogroup), or to say that a CPU cgroup decides: read
from the sysctl's text, /proc/self/cgroup's text and the cgroup v2 tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.priority import scheduling_group

V1_ROOT = "9:name=systemd:/\n4:memory:/process_api/x\n2:cpuacct:/\n1:cpu:/\n0::/\n"
V1_CPUACCT_COMBINED = "5:cpu,cpuacct:/\n1:name=systemd:/user.slice\n"
V1_SERVICE = "5:cpu,cpuacct:/system.slice/reconciler.service\n0::/system.slice/x\n"
V1_DOCKER = "1:cpu:/docker/0123abcd\n0::/\n"
V2_ROOT = "0::/\n"
V2_SERVICE = "0::/system.slice/serve-reconciler.service\n"


@pytest.fixture
def v2_tree(tmp_path: Path) -> Path:
    """A cgroup v2 tree: the CPU controller enabled for system.slice's children, not for
    user.slice's; no cpu.weight at the root (the root has none)."""
    service = tmp_path / "system.slice" / "serve-reconciler.service"
    service.mkdir(parents=True)
    (service / "cpu.weight").write_text("100\n")
    (tmp_path / "user.slice" / "session-1.scope").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize(
    ("enabled", "cgroup", "expected"),
    [
        ("1\n", V1_ROOT, "session"),
        ("1\n", V1_CPUACCT_COMBINED, "session"),
        ("1\n", V1_SERVICE, "cgroup"),  # a unit's own cgroup: autogroup does not apply
        ("1\n", V1_DOCKER, "cgroup"),  # the cpu controller's path decides, not the unified one
        ("0\n", V1_ROOT, ""),  # autogroup off: nice counts machine-wide
        ("", V1_ROOT, ""),  # no such sysctl (a kernel without autogroup)
        ("1\n", V2_ROOT, "session"),  # the host's root: no cpu.weight there
        ("1\n", V2_SERVICE, "cgroup"),
        ("0\n", V2_SERVICE, "cgroup"),
        ("1\n", "0::/user.slice/session-1.scope\n", "session"),  # CPU controller off there
        ("1\n", "", ""),  # no /proc/self/cgroup: say nothing
        ("1\n", "garbage\n0::/\n", "session"),  # a line not id:controllers:path is skipped
    ],
)
def test_scheduling_group(enabled: str, cgroup: str, expected: str, v2_tree: Path) -> None:
    assert scheduling_group(enabled, cgroup, v2_tree) == expected


def test_a_containers_cgroup_namespace_shows_its_own_cgroup_as_the_root(tmp_path: Path) -> None:
    # Docker on cgroup v2 gives a container a cgroup namespace: /proc/self/cgroup reads `0::/`,
    # but the tree mounted there is the container's cgroup, which has a CPU weight.
    (tmp_path / "cpu.weight").write_text("100\n")
    assert scheduling_group("1\n", V2_ROOT, tmp_path) == "cgroup"
