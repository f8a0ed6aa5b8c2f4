"""When the kernel groups the daemon's tasks by session (autogroup), so that `--nice` must set
the session's group too: read from the sysctl and /proc/self/cgroup texts."""

from __future__ import annotations

import pytest

from reconciler.cli.priority import scheduled_by_session

V1_ROOT = "9:name=systemd:/\n4:memory:/process_api/x\n2:cpuacct:/\n1:cpu:/\n0::/\n"
V1_CPUACCT_COMBINED = "5:cpu,cpuacct:/\n1:name=systemd:/user.slice\n"
V1_SERVICE = "5:cpu,cpuacct:/system.slice/reconciler.service\n0::/system.slice/x\n"
V2_ROOT = "0::/\n"
V2_SERVICE = "0::/system.slice/serve-reconciler.service\n"
V1_DOCKER = "1:cpu:/docker/0123abcd\n0::/\n"


@pytest.mark.parametrize(
    ("enabled", "cgroup", "expected"),
    [
        ("1\n", V1_ROOT, True),
        ("1\n", V1_CPUACCT_COMBINED, True),
        ("1\n", V2_ROOT, True),
        ("1\n", V1_SERVICE, False),  # a unit's own cgroup: autogroup does not apply
        ("1\n", V2_SERVICE, False),
        ("1\n", V1_DOCKER, False),  # the cpu controller's path decides, not the unified line
        ("0\n", V1_ROOT, False),  # autogroup off
        ("", V2_ROOT, False),  # no such sysctl (kernel without autogroup)
        ("1\n", "", False),  # no /proc/self/cgroup
        ("1\n", "garbage\n0::/\n", True),  # a line that is not id:controllers:path is skipped
    ],
)
def test_scheduled_by_session(enabled: str, cgroup: str, expected: bool) -> None:
    assert scheduled_by_session(enabled, cgroup) is expected
