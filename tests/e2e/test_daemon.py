"""`reconciler run` as a subprocess against a local bare repo and the real engine (issue 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.model import ReplicaState
from reconciler.runtime.docker_engine import DockerEngine
from tests.conftest import BASE_IMAGE
from tests.support import Daemon, GitRemote, free_port, git, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
def remote(tmp_path: Path, greeter_tree: Path) -> GitRemote:
    return GitRemote.create(tmp_path / "git", files_from=greeter_tree)


@pytest.fixture
def make_daemon(tmp_path: Path, remote: GitRemote, instance_name: str) -> Iterator[Any]:
    daemons: list[Daemon] = []
    port = free_port()

    def make(**env: str) -> Daemon:
        args = [
            "--repo",
            remote.url,
            "--branch",
            "main",
            "--config",
            "serve_config.yaml",
            "--poll-interval",
            "1",
            "--state-dir",
            str(tmp_path / "state"),
            "--listen",
            f"127.0.0.1:{port}",
            "--instance",
            instance_name,
            "--default-image",
            BASE_IMAGE,
        ]
        d = Daemon(args, port, env, tmp_path / f"daemon{len(daemons)}.log")
        daemons.append(d)
        return d.start()

    yield make
    for d in daemons:
        d.kill()


class Replicas:
    def __init__(self, instance: str) -> None:
        self.engine = DockerEngine(instance=instance, default_image=BASE_IMAGE)

    def all(self) -> list[Any]:
        return self.engine.observe()

    def running(self) -> list[Any]:
        return [r for r in self.all() if r.state == ReplicaState.RUNNING]

    def ids(self) -> set[str]:
        return {r.container_id for r in self.running()}

    def answers(self) -> set[str]:
        out = set()
        for r in self.running():
            url = f"{r.control_url}/-/call/{r.app}/{r.deployment}/greet"
            out.add(
                requests.post(url, json={"args": ["al"], "kwargs": {}}, timeout=10).json()["result"]
            )
        return out


def _running_at(daemon: Daemon, commit: str) -> bool:
    status = daemon.status()
    return status["app_status"]["status"] == "RUNNING" and status["applied_commit"] == commit


def test_push_is_the_deploy(make_daemon: Any, remote: GitRemote, instance_name: str) -> None:
    replicas = Replicas(instance_name)
    daemon = make_daemon()
    first = _head(remote)
    wait_for(lambda: _running_at(daemon, first), timeout=90, what="first commit RUNNING")
    assert len(replicas.running()) == 2
    original = replicas.ids()

    # user_config: applied in place
    remote.edit("serve_config.yaml", "greeting: hello", "greeting: bonjour")
    c2 = remote.commit_all("say bonjour")
    wait_for(
        lambda: _running_at(daemon, c2) and replicas.answers() == {"bonjour, al (v1)"},
        timeout=60,
        what="user_config applied",
    )
    assert replicas.ids() == original

    # num_replicas: scales, the original two stay
    remote.edit("serve_config.yaml", "num_replicas: 2", "num_replicas: 3")
    c3 = remote.commit_all("three greeters")
    wait_for(
        lambda: _running_at(daemon, c3) and len(replicas.running()) == 3,
        timeout=60,
        what="scaled to 3",
    )
    assert original <= replicas.ids()
    scaled = replicas.ids()

    # invalid commit: nothing changes, DEPLOY_FAILED with the line of the error
    remote.edit("serve_config.yaml", "num_replicas: 3", "num_replica: 3")
    bad = remote.commit_all("typo")
    status = wait_for(
        lambda: (s := daemon.status())["attempted_commit"] == bad and s,
        timeout=30,
        what="bad commit attempted",
    )
    assert status["app_status"]["status"] == "DEPLOY_FAILED"
    assert status["applied_commit"] == c3
    assert "serve_config.yaml:6:" in status["app_status"]["message"]
    assert "num_replica" in status["app_status"]["message"]
    assert replicas.ids() == scaled

    # the next valid commit recovers without a restart of the daemon
    remote.edit("serve_config.yaml", "num_replica: 3", "num_replicas: 3")
    c5 = remote.commit_all("fix typo")
    wait_for(lambda: _running_at(daemon, c5), timeout=60, what="recovered")
    assert replicas.ids() == scaled
    assert daemon.status()["app_status"]["message"] == ""

    # code change: every replica rolls
    remote.edit("greeter.py", 'VERSION = "v1"', 'VERSION = "v2"')
    c6 = remote.commit_all("v2")
    wait_for(
        lambda: _running_at(daemon, c6) and replicas.answers() == {"bonjour, al (v2)"},
        timeout=90,
        what="code rolled out",
    )
    assert not (replicas.ids() & scaled)
    assert len(replicas.running()) == 3

    # force-push back to an older commit is followed
    remote.force_push(c2)
    wait_for(
        lambda: (
            _running_at(daemon, c2)
            and replicas.answers() == {"bonjour, al (v1)"}
            and len(replicas.running()) == 2
        ),
        timeout=90,
        what="force-push followed",
    )
    history = requests.get(daemon.url + "/history", timeout=5).json()
    assert any(h["commit"] == bad and h["outcome"] == "invalid" for h in history)


def _head(remote: GitRemote) -> str:
    return git(remote.work, "rev-parse", "HEAD")


def test_unreachable_remote_keeps_replicas_and_recovers(
    make_daemon: Any, remote: GitRemote, instance_name: str
) -> None:
    replicas = Replicas(instance_name)
    daemon = make_daemon()
    first = _head(remote)
    wait_for(lambda: _running_at(daemon, first), timeout=90, what="first deploy")
    before = replicas.ids()
    hidden = remote.bare.with_name("hidden.git")
    remote.bare.rename(hidden)
    status = wait_for(
        lambda: (s := daemon.status())["source_error"] and s,
        timeout=30,
        what="source error reported",
    )
    assert status["app_status"]["status"] == "RUNNING"
    assert replicas.ids() == before
    hidden.rename(remote.bare)
    remote.edit("serve_config.yaml", "greeting: hello", "greeting: back")
    c2 = remote.commit_all("back again")
    wait_for(
        lambda: _running_at(daemon, c2) and not daemon.status()["source_error"],
        timeout=90,
        what="recovery after the remote returns",
    )
    assert replicas.ids() == before


def test_kill_9_mid_rollout_converges_without_duplicates(
    make_daemon: Any, remote: GitRemote, instance_name: str
) -> None:
    replicas = Replicas(instance_name)
    daemon = make_daemon()
    wait_for(lambda: _running_at(daemon, _head(remote)), timeout=90, what="first deploy")
    remote.edit("serve_config.yaml", "num_replicas: 2", "num_replicas: 4")
    remote.edit("greeter.py", 'VERSION = "v1"', 'VERSION = "v2"')
    c2 = remote.commit_all("v2, four replicas")
    wait_for(
        lambda: (
            any(
                r.state == ReplicaState.STARTING or r.version != replicas.all()[0].version
                for r in replicas.all()
            )
            or daemon.status()["applied_commit"] == c2
        ),
        timeout=30,
        what="rollout started",
    )
    daemon.kill()
    again = make_daemon()
    wait_for(
        lambda: _running_at(again, c2) and replicas.answers() == {"hello, al (v2)"},
        timeout=120,
        what="convergence after kill -9",
    )
    final = replicas.all()
    assert len(final) == 4, [r.name for r in final]
    names = [r.name for r in final]
    assert len(set(names)) == len(names)
    assert len({r.version for r in final}) == 1
