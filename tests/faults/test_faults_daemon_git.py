"""Git and local-state faults under a running daemon (issue 9, "Faults"): a remote that hangs, a
remote that serves a corrupt object, the clone directory deleted or damaged, the state database
deleted while running and between runs. In each, the replicas keep running, /status says what is
wrong, and the daemon recovers once the cause is gone. (A remote that is gone is covered by
tests/e2e/test_daemon.py.)"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import requests

from tests.faults.faults_support import Rig, converge, git_front, greet_all, running_at
from tests.support import Daemon, git, wait_for

pytestmark = pytest.mark.docker


def _head(rig: Rig) -> str:
    return git(rig.remote.work, "rev-parse", "HEAD")


def _greet(rig: Rig, word: str) -> str:
    """Push a user_config change (applied in place: no replica restarts); return the commit."""
    config = rig.remote.work / "serve_config.yaml"
    text = config.read_text()
    old = next(line for line in text.splitlines() if "greeting:" in line)
    rig.remote.edit("serve_config.yaml", old, f"      greeting: {word}")
    return rig.remote.commit_all(f"say {word}")


def _passes(daemon: Daemon) -> int:
    return int(daemon.status()["passes"])


def _applied(rig: Rig, daemon: Daemon, commit: str, word: str) -> None:
    wait_for(
        lambda: running_at(daemon, commit) and greet_all(rig) == {f"{word}, al (v0)"},
        timeout=60,
        what=f"{word} applied",
    )


def test_hanging_remote_times_out_and_drift_is_still_repaired(rig: Rig) -> None:
    with git_front(rig.remote.bare.parent, rig.tmp / "git-daemon.log") as front:
        daemon = rig.start("--git-timeout", "2", repo=front.url(rig.remote.bare.name))
        converge(rig, daemon, _head(rig), 2)
        before = rig.running_ids()

        front.hang.set()
        pushed = _greet(rig, "hung")
        started = time.monotonic()
        status = wait_for(
            lambda: (s := daemon.status())["source_error"] and s,
            timeout=15,
            what="the hanging remote reported",
        )
        reported_s = time.monotonic() - started
        assert "timed out after 2s" in status["source_error"], status["source_error"]
        assert status["app_status"]["status"] == "RUNNING"
        assert status["applied_commit"] != pushed
        assert requests.get(daemon.url + "/healthz", timeout=5).status_code == 200
        assert rig.running_ids() == before
        print(f"hanging remote reported after {reported_s:.1f}s")

        # The loop keeps passing while every ls-remote hangs: a killed replica is replaced.
        victim = sorted(before)[0]
        rig.docker.api.kill(victim)
        wait_for(
            lambda: len(rig.running_ids() - before) == 1 and len(rig.running_ids()) == 2,
            timeout=60,
            what="the killed replica replaced while the remote hangs",
        )
        assert daemon.status()["source_error"], "the remote hung throughout"

        front.release()
        _applied(rig, daemon, pushed, "hung")
        assert daemon.status()["source_error"] is None


def _loose_object(bare: Path, sha: str) -> Path:
    return bare / "objects" / sha[:2] / sha[2:]


def test_corrupt_object_on_the_remote_is_reported_and_recovers(rig: Rig) -> None:
    daemon = rig.start()
    converge(rig, daemon, _head(rig), 2)
    before = rig.running_ids()
    # The commit reaches the remote under another branch, so the daemon cannot fetch it before
    # it is damaged; then the watched branch is pointed at it.
    rig.remote.edit("serve_config.yaml", "greeting: hello", "greeting: mended")
    git(rig.remote.work, "commit", "-qam", "mended")
    commit = _head(rig)
    git(rig.remote.work, "push", "-q", "origin", "HEAD:refs/heads/staging")
    obj = _loose_object(rig.remote.bare, commit)
    good = obj.read_bytes()
    obj.chmod(0o644)
    obj.write_bytes(b"\x78\x9c garbage, not a commit" + os.urandom(32))
    (rig.remote.bare / "refs/heads/main").write_text(commit + "\n")

    status = wait_for(
        lambda: (s := daemon.status())["source_error"] and s,
        timeout=30,
        what="the corrupt object reported",
    )
    assert "cannot fetch" in status["source_error"], status["source_error"]
    assert status["latest_commit"] == commit
    assert status["app_status"]["status"] == "RUNNING"
    assert rig.running_ids() == before

    obj.write_bytes(good)
    _applied(rig, daemon, commit, "mended")
    assert daemon.status()["source_error"] is None
    assert rig.running_ids() == before


def test_clone_and_database_lost_while_running_and_between_runs(rig: Rig) -> None:
    daemon = rig.start()
    converge(rig, daemon, _head(rig), 2)
    before = rig.running_ids()
    clone = rig.state_dir / "git"

    # The whole clone directory deleted: the next commit is cloned afresh.
    shutil.rmtree(clone)
    seen = _passes(daemon)
    wait_for(lambda: _passes(daemon) > seen + 2, timeout=30, what="passes after the rm")
    assert daemon.status()["engine_error"] is None, daemon.status()["engine_error"]
    first = _greet(rig, "again")
    _applied(rig, daemon, first, "again")

    # The clone damaged: every object file truncated, HEAD overwritten.
    for path in (clone / "repo" / "objects").rglob("*"):
        if path.is_file():
            path.chmod(0o644)
            path.write_bytes(b"")
    (clone / "repo" / "HEAD").write_text("garbage\n")
    second = _greet(rig, "mended")
    _applied(rig, daemon, second, "mended")

    # The state database deleted while running: reopened empty, the next commit is recorded.
    for suffix in ("", "-wal", "-shm"):
        (rig.state_dir / f"state.db{suffix}").unlink(missing_ok=True)
    third = _greet(rig, "recorded")
    _applied(rig, daemon, third, "recorded")
    history = requests.get(daemon.url + "/history", timeout=5).json()
    assert [h["commit"] for h in history] == [third], history
    assert rig.running_ids() == before

    # ... and between runs: the restarted daemon adopts the replicas as they are.
    assert daemon.stop() == 0
    for suffix in ("", "-wal", "-shm"):
        (rig.state_dir / f"state.db{suffix}").unlink(missing_ok=True)
    daemon = rig.start()
    _applied(rig, daemon, third, "recorded")
    assert rig.running_ids() == before
    config = requests.get(daemon.url + "/config", timeout=5).json()
    assert config["commit"] == third, config
