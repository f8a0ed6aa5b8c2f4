"""Disk full in the state directory (issue 9, "Faults").

The state directory is a 2 MiB tmpfs. Once the daemon has deployed, the tmpfs is filled and a
commit is pushed: /status and the log say the disk is full, the database stays intact (it opens,
passes an integrity check and still holds the applied commit), the replicas keep running; once
the space is freed, the new commit is applied. Needs root to mount; skipped with the reason
otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

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


def _disk_full_reported(daemon: Daemon) -> dict[str, object] | None:
    status = daemon.status()
    text = " ".join(str(status.get(k) or "") for k in ("source_error", "engine_error"))
    text += " " + str(status["app_status"]["message"])
    return status if "disk is full" in text or "No space left" in text else None


def test_disk_full_in_the_state_directory(rig: Rig) -> None:
    with small_tmpfs(rig.state_dir):
        try:
            daemon = rig.start()
            first = git(rig.remote.work, "rev-parse", "HEAD")
            converge(rig, daemon, first, 2)
            before = rig.running_ids()

            filler = fill(rig.state_dir / "filler")
            rig.remote.edit("serve_config.yaml", "greeting: hello", "greeting: roomy")
            pushed = rig.remote.commit_all("needs room")
            status = wait_for(lambda: _disk_full_reported(daemon), timeout=30, what="disk full")
            assert status["applied_commit"] == first
            assert "disk is full" in daemon.log() or "No space left" in daemon.log()
            assert _db_applied_commit(rig.state_dir) == first
            assert rig.running_ids() == before
            assert daemon.proc is not None and daemon.proc.poll() is None

            filler.unlink()
            wait_for(
                lambda: running_at(daemon, pushed) and greet_all(rig) == {"roomy, al (v0)"},
                timeout=60,
                what="recovery once space returns",
            )
            assert _disk_full_reported(daemon) is None
            assert _db_applied_commit(rig.state_dir) == pushed
            assert rig.running_ids() == before
        finally:
            rig.kill_all()  # the daemon holds files in the tmpfs
