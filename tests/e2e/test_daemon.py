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


def test_a_revert_to_the_applied_commit_clears_deploy_failed(
    make_daemon: Any, remote: GitRemote, instance_name: str
) -> None:
    """Push an invalid commit, then `git reset --hard GOOD && git push -f`: /status describes
    the branch as it is now (RUNNING at GOOD), the refusal stays in /history."""
    replicas = Replicas(instance_name)
    daemon = make_daemon()
    good = _head(remote)
    wait_for(lambda: _running_at(daemon, good), timeout=90, what="first commit RUNNING")
    before = replicas.ids()
    remote.edit("serve_config.yaml", "num_replicas: 2", "num_replica: 2")
    bad = remote.commit_all("typo")
    wait_for(
        lambda: daemon.status()["app_status"]["status"] == "DEPLOY_FAILED",
        timeout=30,
        what="the typo refused",
    )
    git(remote.work, "reset", "-q", "--hard", good)
    remote.force_push(good)
    status = wait_for(
        lambda: (s := daemon.status())["app_status"]["status"] == "RUNNING" and s,
        timeout=30,
        what="RUNNING again after the revert",
    )
    assert status["applied_commit"] == status["latest_commit"] == good
    assert status["errors"] == [] and "not applied" not in status["app_status"]["message"]
    assert replicas.ids() == before
    history = requests.get(daemon.url + "/history", timeout=5).json()
    assert any(h["commit"] == bad and h["outcome"] == "invalid" for h in history)


def test_a_commit_asking_for_far_more_than_the_host_holds_waits(
    make_daemon: Any, remote: GitRemote, instance_name: str, docker_client: Any
) -> None:
    """num_replicas: 100000 starts only what the replica cap allows; the rest are pending with
    Serve's kind of message and a gauge; scaling back down clears it."""
    daemon = make_daemon(RECONCILER_MAX_REPLICAS="4")
    wait_for(lambda: _running_at(daemon, _head(remote)), timeout=90, what="first deploy")
    remote.edit("serve_config.yaml", "num_replicas: 2", "num_replicas: 100000")
    huge = remote.commit_all("one hundred thousand")

    def waiting() -> Any:
        s = daemon.status()
        dep = s["deployment_statuses"][0]
        return s["applied_commit"] == huge and dep["replicas"].get("RUNNING") == 4 and s

    status = wait_for(waiting, timeout=90, what="4 running, the rest pending")
    dep = status["deployment_statuses"][0]
    assert dep["status"] == "UPDATING" and dep["replicas"]["PENDING"] == 100000 - 4
    assert "cannot start" in dep["message"] and "--max-replicas" in dep["message"]
    assert status["pending_replicas"] == 100000 - 4
    owned = docker_client.containers.list(
        all=True, filters={"label": f"io.serve-reconciler.owner={instance_name}"}
    )
    assert len(owned) <= 4 + 1  # the replicas and the ingress
    metrics = requests.get(daemon.url + "/metrics", timeout=5).text
    gauge = 'serve_reconciler_replicas_pending{app="default",deployment="Greeter"} 99996.0'
    assert gauge in metrics
    remote.edit("serve_config.yaml", "num_replicas: 100000", "num_replicas: 2")
    small = remote.commit_all("back to two")
    wait_for(lambda: _running_at(daemon, small), timeout=90, what="scaled back down, RUNNING")
    assert daemon.status()["pending_replicas"] == 0
