"""Pin, unpin and rollback with `reconciler run` as a subprocess on the real engine, a local bare
repository and a behavioural model of GitHub's commit-status API (tests/github_model.py): one
daemon for the module, its steps in order. The pin holds while the branch moves, survives a
restart (the replicas adopted, not replaced), rollback pins the commit deployed before, the
changing endpoints refuse a request without the token, and the git host receives the statuses of
an applied and of a refused commit in order."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.model import ReplicaState
from reconciler.runtime.docker_engine import DockerEngine
from tests.conftest import BASE_IMAGE, new_instance_name, remove_owned
from tests.e2e.conftest import GREETER, GREETER_CONFIG
from tests.github_model import GitHubModel, github_model
from tests.support import Daemon, GitRemote, free_port, git, wait_for

pytestmark = pytest.mark.docker

TOKEN = "pin-test-token-0123456789"
GITHUB_TOKEN = "ghp_" + "g" * 36


@dataclass
class World:
    daemon: Daemon
    remote: GitRemote
    github: GitHubModel
    instance: str
    token_file: Path
    commits: dict[str, str]

    def status(self) -> dict[str, Any]:
        return self.daemon.status()

    def running_at(self, commit: str) -> bool:
        s = self.status()
        return s["app_status"]["status"] == "RUNNING" and s["applied_commit"] == commit

    def replica_ids(self) -> set[str]:
        engine = DockerEngine(instance=self.instance, default_image=BASE_IMAGE)
        try:
            return {r.container_id for r in engine.observe() if r.state == ReplicaState.RUNNING}
        finally:
            engine.close()

    def cli(self, *args: str, token: bool = True) -> subprocess.CompletedProcess[str]:
        extra = ["--token-file", str(self.token_file)] if token else []
        return subprocess.run(
            [sys.executable, "-m", "reconciler", *args, "-a", self.daemon.url, *extra],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.token_file.parent)},
        )

    def post(self, path: str, body: Any = None, token: str | None = TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(self.daemon.url + path, json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("pin")
    tree = tmp / "greeter"
    tree.mkdir()
    (tree / "greeter.py").write_text(GREETER)
    (tree / "serve_config.yaml").write_text(GREETER_CONFIG.format(port=free_port()))
    remote = GitRemote.create(tmp / "git", files_from=tree)
    token_file, github_token = tmp / "api-token", tmp / "github-token"
    token_file.write_text(TOKEN + "\n")
    github_token.write_text(GITHUB_TOKEN)
    instance = new_instance_name()
    port = free_port()
    with github_model(GITHUB_TOKEN) as github:
        args = [
            "--repo", remote.url, "--poll-interval", "1", "--state-dir", str(tmp / "state"),
            "--listen", f"127.0.0.1:{port}", "--instance", instance,
            "--default-image", BASE_IMAGE, "--api-token-file", str(token_file),
            "--commit-status-url", github.api_url,
            "--commit-status-token-file", str(github_token),
        ]  # fmt: skip
        daemon = Daemon(args, port, {}, tmp / "daemon.log")
        first = git(remote.work, "rev-parse", "HEAD")
        w = World(daemon.start(), remote, github, instance, token_file, {"first": first})
        try:
            wait_for(lambda: w.running_at(first), timeout=120, what="the first commit RUNNING")
            yield w
        finally:
            w.daemon.kill()
            remove_owned(docker_client, instance)


def _statuses_settle(world: World, sha: str, final: str) -> list[str]:
    return wait_for(
        lambda: (states := world.github.states(sha)) and states[-1] == final and states,
        timeout=30,
        what=f"status {final} for {sha[:12]}",
    )


def test_an_applied_commit_gets_pending_then_success(world: World) -> None:
    _statuses_settle(world, world.commits["first"], "success")
    world.remote.edit("serve_config.yaml", "greeting: hello", "greeting: bonjour")
    c2 = world.commits["bonjour"] = world.remote.commit_all("say bonjour")
    wait_for(lambda: world.running_at(c2), timeout=60, what="bonjour RUNNING")
    states = _statuses_settle(world, c2, "success")
    assert states[0] == "pending" and set(states[:-1]) == {"pending"}, states
    posted = world.github.statuses[c2][-1]
    assert posted["context"] == f"serve-reconciler/{world.instance}"
    assert posted["target_url"] == world.daemon.url + "/"
    headers = [h for m, p, h in world.github.requests if m == "POST"]
    assert all(h["authorization"] == f"token {GITHUB_TOKEN}" for h in headers)
    assert GITHUB_TOKEN not in world.daemon.log() and TOKEN not in world.daemon.log()


def test_a_refused_commit_gets_failure_with_its_first_error(world: World) -> None:
    world.remote.edit("serve_config.yaml", "num_replicas: 2", "num_replica: 2")
    bad = world.commits["bad"] = world.remote.commit_all("typo")
    states = _statuses_settle(world, bad, "failure")
    assert set(states[:-1]) <= {"pending"}, states
    description = world.github.descriptions(bad)[-1]
    assert description.startswith("Refused: serve_config.yaml:6:") and "num_replica" in description
    assert world.status()["applied_commit"] == world.commits["bonjour"]


def test_changing_endpoints_need_the_token(world: World) -> None:
    before = world.status()["pinned_commit"]
    for token in (None, "wrong"):
        for path in ("/pin", "/rollback"):
            response = world.post(path, {"commit": world.commits["first"]}, token=token)
            assert response.status_code == 401, (path, token, response.text)
        delete = requests.delete(
            world.daemon.url + "/pin",
            headers={"Authorization": f"Bearer {token}"} if token else {},
            timeout=10,
        )
        assert delete.status_code == 401
    assert world.status()["pinned_commit"] == before
    refused = world.cli("rollback", token=False)
    assert refused.returncode == 1 and "401" in refused.stderr


def test_an_invalid_commit_cannot_be_pinned(world: World) -> None:
    result = world.cli("pin", world.commits["bad"][:10])
    assert result.returncode == 1
    assert "was not pinned" in result.stderr and "serve_config.yaml:6:" in result.stderr
    assert world.status()["pinned_commit"] is None


def test_rollback_pins_the_commit_before_and_holds_it_while_the_branch_moves(world: World) -> None:
    first, bonjour = world.commits["first"], world.commits["bonjour"]
    result = world.cli("rollback")
    assert result.returncode == 0, result.stderr
    assert f"pinned commit {first[:12]}" in result.stdout
    wait_for(lambda: world.running_at(first), timeout=60, what="rolled back to the first commit")
    status = world.status()
    assert status["pinned_commit"] == first
    assert status["pin_reason"] == f"rollback from commit {bonjour[:12]}"
    # the branch moves on (a fix of the typo): held behind the pin
    world.remote.edit("serve_config.yaml", "num_replica: 2", "num_replicas: 2")
    world.remote.edit("serve_config.yaml", "greeting: bonjour", "greeting: hola")
    fix = world.commits["hola"] = world.remote.commit_all("hola, and the typo fixed")
    status = wait_for(
        lambda: (s := world.status())["latest_commit"] == fix and s, timeout=30, what="head seen"
    )
    assert status["waiting_behind_pin"] is True and status["applied_commit"] == first
    assert "waiting behind the pin" in status["app_status"]["message"]
    _statuses_settle(world, fix, "pending")
    assert world.github.descriptions(fix)[-1] == f"Waiting behind the pin at {first[:12]}"
    metrics = requests.get(world.daemon.url + "/metrics", timeout=10).text
    assert f'serve_reconciler_pinned_commit_info{{commit="{first}"}} 1.0' in metrics
    assert "serve_reconciler_behind_pin 1.0" in metrics
    # a few polls later, still the pinned commit
    wait_for(lambda: world.status()["passes"] > status["passes"] + 3, timeout=30, what="polls")
    assert world.running_at(first) and world.status()["latest_commit"] == fix


def test_a_restart_keeps_the_pin_and_the_replicas(world: World) -> None:
    first = world.commits["first"]
    before = world.replica_ids()
    assert world.daemon.stop() == 0
    world.daemon.start()
    wait_for(lambda: world.running_at(first), timeout=60, what="RUNNING after the restart")
    status = world.status()
    assert status["pinned_commit"] == first and status["latest_commit"] == world.commits["hola"]
    assert status["waiting_behind_pin"] is True
    assert world.replica_ids() == before  # adopted, not replaced


def test_unpin_follows_the_branch_head(world: World) -> None:
    fix = world.commits["hola"]
    result = world.cli("unpin")
    assert result.returncode == 0, result.stderr
    assert "following the branch again" in result.stdout
    wait_for(lambda: world.running_at(fix), timeout=60, what="the branch head after unpin")
    status = world.status()
    assert status["pinned_commit"] is None and status["waiting_behind_pin"] is False
    _statuses_settle(world, fix, "success")
    page = requests.get(world.daemon.url + "/", timeout=10).text
    for event in ("applied", "unpinned", "pinned", "invalid"):
        assert f'data-event="{event}"' in page, event
    assert "Traceback" not in world.daemon.log_path.read_text()
