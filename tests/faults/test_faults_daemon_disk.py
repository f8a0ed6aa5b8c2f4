"""Disk full in the state directory (issue 9, "Faults").

The state directory is a 2 MiB tmpfs. Once the daemon has deployed, the tmpfs is filled and a
commit is pushed: /status and the log say the disk is full, the database stays intact (it opens,
passes an integrity check and still holds the applied commit), the replicas keep running; once
the space is freed, the new commit is applied. Twice: once where git fails to fetch, once where
the tree is at hand and the database write fails. Needs root to mount; skipped with the reason
otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.faults_support import Rig, converge, greet_all, running_at
from tests.support import Daemon, git, wait_for

pytestmark = pytest.mark.docker


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the state directory: {mount.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path: Path) -> Path:
    """Write `path` until the file system is full; return it (deleting it frees the space)."""
    chunk = b"\0" * 65536
    with path.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return path


def _db_applied_commit(state_dir: Path) -> str:
    """The applied commit read straight from the database, after an integrity check."""
    with contextlib.closing(
        sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True)
    ) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return str(db.execute("SELECT commit_id FROM applied").fetchone()[0])


def _disk_full_reported(daemon: Daemon, needle: str) -> dict[str, Any] | None:
    status = daemon.status()
    text = " ".join(str(status.get(k) or "") for k in ("source_error", "engine_error"))
    return status if needle in text + str(status["app_status"]["message"]) else None


def _full_then_freed(rig: Rig, daemon: Daemon, change: Callable[[], str], needle: str) -> None:
    """Fill the disk, make `change` (a push), see `needle` in /status while the last commit keeps
    running intact, free the space, see the pushed commit applied."""
    applied = str(daemon.status()["applied_commit"])
    before = rig.running_ids()
    filler = fill(rig.state_dir / "filler")
    pushed = change()
    status = wait_for(lambda: _disk_full_reported(daemon, needle), timeout=30, what=needle)
    assert status["applied_commit"] == applied
    assert status["app_status"]["status"] == "RUNNING"
    assert needle in daemon.log()
    assert _db_applied_commit(rig.state_dir) == applied
    assert rig.running_ids() == before
    assert daemon.proc is not None and daemon.proc.poll() is None

    filler.unlink()
    wait_for(lambda: running_at(daemon, pushed), timeout=60, what="recovery once space returns")
    assert _disk_full_reported(daemon, needle) is None
    assert _db_applied_commit(rig.state_dir) == pushed
    assert rig.running_ids() == before


def test_disk_full_in_the_state_directory(rig: Rig) -> None:
    with small_tmpfs(rig.state_dir):
        try:
            daemon = rig.start()
            first = git(rig.remote.work, "rev-parse", "HEAD")
            converge(rig, daemon, first, 2)

            # A new commit: git cannot fetch it into the full state directory.
            def roomy() -> str:
                rig.remote.edit("serve_config.yaml", "greeting: hello", "greeting: roomy")
                return rig.remote.commit_all("needs room")

            _full_then_freed(rig, daemon, roomy, "No space left on device")
            assert greet_all(rig) == {"roomy, al (v0)"}

            # Back to a commit whose tree is still exported: now the database write fails.
            def back() -> str:
                rig.remote.force_push(first)
                return first

            _full_then_freed(rig, daemon, back, "the disk is full")
            assert greet_all(rig) == {"hello, al (v0)"}
        finally:
            rig.kill_all()  # the daemon holds files in the tmpfs
