"""The Docker engine restarted under a running deployment (issue 9, "Faults").

dockerd is stopped (SIGTERM, as a service manager would) while the daemon runs a deployment:
/status reports the engine error and /healthz keeps answering; dockerd is started again with its
own command line and the daemon recovers with no manual step (RUNNING, replicas replaced as
needed). This file sorts last because every container on the machine stops with the engine;
dockerd is started again even when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import BASE_IMAGE
from tests.faults.faults_support import Rig, converge, greet_all
from tests.support import git, wait_for

pytestmark = pytest.mark.docker

DOCKERD_LOG = Path("/tmp/dockerd.log")


def _same_netns(pid: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return False


@dataclass(frozen=True)
class Dockerd:
    """How the running dockerd was started, read from /proc, so it can be started again."""

    pid: int
    argv: list[str]
    env: dict[str, str]
    cwd: str

    @classmethod
    def find(cls) -> Dockerd:
        found = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True).stdout.split()
        # The engine the tests use runs in this network namespace; a swarm lab's dockerds (the
        # session's tests/swarm lab) each run in one of their own.
        pids = [p for p in found if _same_netns(p)]
        if len(pids) != 1:
            pytest.skip(f"need exactly one dockerd here to restart, found pids {pids} of {found}")
        pid = int(pids[0])
        proc = Path(f"/proc/{pid}")
        try:
            argv = proc.joinpath("cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            env = proc.joinpath("environ").read_bytes().rstrip(b"\0").split(b"\0")
            cwd = os.readlink(proc / "cwd")
        except PermissionError as exc:
            pytest.skip(f"cannot read dockerd's command line ({exc}); run as root")
        pairs = (e.decode().partition("=") for e in env if b"=" in e)
        return cls(pid, [a.decode() for a in argv], {k: v for k, _, v in pairs}, cwd)

    def running(self) -> bool:
        try:
            state = Path(f"/proc/{self.pid}/status").read_text()
        except FileNotFoundError:
            return False
        return "\nState:\tZ" not in state  # a zombie has exited; init reaps it

    def stop(self) -> None:
        os.kill(self.pid, signal.SIGTERM)
        wait_for(lambda: not self.running(), timeout=90, what="dockerd to exit")

    def start(self, docker: Any) -> None:
        with DOCKERD_LOG.open("ab") as log:
            subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the test run, like the original
            )
        wait_for(docker.ping, timeout=90, what="dockerd to answer again")


@contextlib.contextmanager
def engine_down(docker: Any) -> Iterator[Dockerd]:
    """dockerd stopped for the body of the block, and started again however the block ends."""
    dockerd = Dockerd.find()
    dockerd.stop()
    try:
        yield dockerd
    finally:
        if not _answers(docker):
            dockerd.start(docker)


def _answers(docker: Any) -> bool:
    try:
        return bool(docker.ping())
    except Exception:
        return False


def test_engine_restart_under_a_running_deployment(rig: Rig, docker_client: Any) -> None:
    daemon = rig.start()
    head = git(rig.remote.work, "rev-parse", "HEAD")
    converge(rig, daemon, head, 2)
    before = rig.running_ids()

    with engine_down(docker_client) as dockerd:
        status = wait_for(
            lambda: (s := daemon.status())["engine_error"] and s,
            timeout=30,
            what="the engine error in /status",
        )
        assert "not reachable" in status["engine_error"], status["engine_error"]
        passes = int(status["passes"])
        wait_for(lambda: int(daemon.status()["passes"]) > passes, timeout=30, what="more passes")
        health = requests.get(daemon.url + "/healthz", timeout=5)
        assert health.status_code == 200, health.text
        assert daemon.proc is not None and daemon.proc.poll() is None
        dockerd.start(docker_client)

    converge(rig, daemon, head, 2, timeout=120)
    assert daemon.status()["engine_error"] is None
    assert greet_all(rig) == {"hello, al (v0)"}
    replaced = rig.running_ids() - before
    print(f"engine restart: {len(replaced)} of {len(before)} replicas replaced")
    # The engine stopped every container; the replicas are back without anyone's help.
    assert len(rig.running_ids()) == 2
    assert docker_client.images.get(BASE_IMAGE) is not None
