"""Everything an instance owns removed behind the daemon's back (issue 9, "Faults"): what an
engine reset or `docker system prune` after a restart leaves. The daemon remembers having made
the network and the ingress; it must notice both are gone and make them again."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.faults.faults_support import Rig, converge, greet_all
from tests.support import git

pytestmark = pytest.mark.docker


def test_containers_and_network_pruned_are_recreated(rig: Rig, docker_client: Any) -> None:
    daemon = rig.start()
    head = git(rig.remote.work, "rev-parse", "HEAD")
    converge(rig, daemon, head, 2)
    before = rig.running_ids()

    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGSTOP)  # the prune lands between two passes
    try:
        for container in rig.containers():
            docker_client.api.remove_container(container["Id"], force=True)
        for network in rig.networks():
            docker_client.api.remove_network(network["Id"])
        assert not rig.containers() and not rig.networks()
    finally:
        daemon.proc.send_signal(signal.SIGCONT)

    converge(rig, daemon, head, 2, timeout=60)
    assert not rig.running_ids() & before
    assert greet_all(rig) == {"hello, al (v0)"}
    assert daemon.status()["engine_error"] is None
