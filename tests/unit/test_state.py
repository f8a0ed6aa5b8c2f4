"""StateStore on a real SQLite file: round trips, the directory lock, and the damage it heals
(deleted or corrupt database) or reports (disk full, read-only)."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.model import HistoryEntry
from reconciler.state import SCHEMA_VERSION, AppliedRecord, AttemptRecord, StateStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(tmp_path / "state")
    yield s
    s.close()


def test_empty_store(store: StateStore) -> None:
    assert store.applied() is None
    assert store.last_attempt() is None
    assert store.history() == []


def test_applied_and_attempt_survive_a_restart(tmp_path: Path) -> None:
    with StateStore(tmp_path) as first:
        first.set_applied("c1", "serve.yaml", '{"a": 1}', 100.0)
        first.record_attempt("c2", "invalid", ["serve.yaml:3:5: bad"], 200.0, "bad commit")

    with StateStore(tmp_path) as second:
        assert second.applied() == AppliedRecord("c1", "serve.yaml", '{"a": 1}', 100.0)
        assert second.last_attempt() == AttemptRecord(
            "c2", "invalid", ("serve.yaml:3:5: bad",), 200.0
        )
        assert second.history() == [HistoryEntry("c2", 200.0, "invalid", "bad commit")]


def test_set_applied_replaces_the_previous_record(store: StateStore) -> None:
    store.set_applied("c1", "serve.yaml", "{}", 1.0)
    store.set_applied("c2", "other.yaml", "[]", 2.0)
    assert store.applied() == AppliedRecord("c2", "other.yaml", "[]", 2.0)


def test_history_is_newest_first_and_skips_repeats(store: StateStore) -> None:
    store.record_attempt("c1", "applied", [], 1.0)
    store.record_attempt("c1", "applied", [], 2.0)  # the same pass outcome again
    store.record_attempt("c2", "invalid", ["x"], 3.0)
    store.record_attempt("c2", "invalid", ["x"], 4.0)
    store.record_attempt("c3", "applied", [], 5.0)
    store.record_attempt("c1", "applied", [], 6.0)  # a rollback is a new deploy

    assert [(h.commit, h.outcome, h.received_at) for h in store.history()] == [
        ("c1", "applied", 6.0),
        ("c3", "applied", 5.0),
        ("c2", "invalid", 3.0),
        ("c1", "applied", 1.0),
    ]
    assert [h.commit for h in store.history(limit=2)] == ["c1", "c3"]
    assert store.last_attempt() == AttemptRecord("c1", "applied", (), 6.0)


def test_database_is_wal_full_sync_and_versioned(store: StateStore, tmp_path: Path) -> None:
    store.set_applied("c1", "serve.yaml", "{}", 1.0)
    conn = sqlite3.connect(tmp_path / "state" / "state.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_second_store_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    with StateStore(tmp_path) as first:
        first.set_applied("c1", "serve.yaml", "{}", 1.0)
        with pytest.raises(StateError) as caught:
            StateStore(tmp_path)
        assert f"another reconciler (pid {os.getpid()})" in str(caught.value)
        assert str(tmp_path) in str(caught.value)
        assert "--state-dir" in str(caught.value)

        other = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from reconciler.state import StateStore; "
                f"StateStore(__import__('pathlib').Path({str(tmp_path)!r}))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert other.returncode != 0
        assert f"another reconciler (pid {os.getpid()})" in other.stderr

    with StateStore(tmp_path) as again:  # the lock goes with close()
        assert again.applied() is not None


def test_database_deleted_while_running_is_recreated(store: StateStore, tmp_path: Path) -> None:
    store.set_applied("c1", "serve.yaml", "{}", 1.0)
    db = tmp_path / "state" / "state.db"
    db.unlink()

    assert store.applied() is None
    store.set_applied("c2", "serve.yaml", "{}", 2.0)
    assert db.is_file()
    assert store.applied() == AppliedRecord("c2", "serve.yaml", "{}", 2.0)


def test_database_deleted_between_runs_starts_empty(tmp_path: Path) -> None:
    with StateStore(tmp_path) as first:
        first.set_applied("c1", "serve.yaml", "{}", 1.0)
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)

    with StateStore(tmp_path) as second:
        assert second.applied() is None
        second.record_attempt("c2", "applied", [], 2.0)
        assert [h.commit for h in second.history()] == ["c2"]


def test_corrupt_database_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    garbage = os.urandom(8192)
    (tmp_path / "state.db").write_bytes(garbage)

    with caplog.at_level(logging.WARNING, logger="reconciler.state"), StateStore(tmp_path) as s:
        assert s.applied() is None
        s.set_applied("c1", "serve.yaml", "{}", 1.0)
        assert s.applied() is not None

    aside = list(tmp_path.glob("state.db.corrupt-*"))
    assert [p.read_bytes() for p in aside if not p.name.endswith(("-wal", "-shm"))] == [garbage]
    assert "corrupt" in caplog.text


def test_database_replaced_by_garbage_while_running(store: StateStore, tmp_path: Path) -> None:
    store.set_applied("c1", "serve.yaml", "{}", 1.0)
    db = tmp_path / "state" / "state.db"
    replacement = tmp_path / "garbage"
    replacement.write_bytes(b"not a database" * 1000)
    os.replace(replacement, db)

    assert store.applied() is None
    store.set_applied("c2", "serve.yaml", "{}", 2.0)
    assert store.applied() == AppliedRecord("c2", "serve.yaml", "{}", 2.0)
    assert list((tmp_path / "state").glob("state.db.corrupt-*"))


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()

    with pytest.raises(StateError, match="schema version 99"):
        StateStore(tmp_path)
    StateStore(tmp_path / "elsewhere").close()  # the failed store released its lock file too


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_disk_full_is_a_clear_error_and_recovers(small_tmpfs: Path) -> None:
    with StateStore(small_tmpfs / "state") as s:
        s.set_applied("c1", "serve.yaml", '{"ok": true}', 1.0)
        s.record_attempt("c1", "applied", [], 1.0)
        filler = _fill(small_tmpfs)

        with pytest.raises(StateError, match="disk is full"):
            s.set_applied("c2", "serve.yaml", "x" * 1_000_000, 2.0)
        assert s.applied() == AppliedRecord("c1", "serve.yaml", '{"ok": true}', 1.0)

        filler.unlink()
        s.set_applied("c2", "serve.yaml", "x" * 1_000_000, 2.0)
        s.record_attempt("c2", "applied", [], 2.0)
        assert s.applied() == AppliedRecord("c2", "serve.yaml", "x" * 1_000_000, 2.0)

    with StateStore(small_tmpfs / "state") as reopened:
        assert [h.commit for h in reopened.history()] == ["c2", "c1"]
        assert reopened.applied() is not None


def test_read_only_state_directory_is_a_clear_error(small_tmpfs: Path, tmp_path: Path) -> None:
    with StateStore(small_tmpfs / "state") as s:
        s.set_applied("c1", "serve.yaml", "{}", 1.0)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(small_tmpfs), str(read_only)], check=True)
    try:
        with pytest.raises(StateError, match="Read-only file system"):
            StateStore(read_only / "state")
    finally:
        subprocess.run(["umount", str(read_only)], check=True, timeout=30)
    with StateStore(small_tmpfs / "state") as s:
        assert s.applied() == AppliedRecord("c1", "serve.yaml", "{}", 1.0)


def test_image_use_keeps_the_tags_of_the_last_applied_commits(store: StateStore) -> None:
    store.record_images("c1", ["app:1", "deps:a"])
    store.record_images("c2", ["app:2", "deps:a"])
    store.record_images("c3", ["app:3"])
    assert store.recent_images(2) == {"app:2", "app:3", "deps:a"}
    assert store.recent_images(1) == {"app:3"}
    store.record_images("c1", ["app:1"])  # a rollback makes c1 the newest again
    assert store.recent_images(1) == {"app:1"}
    assert store.recent_images(0) == set()


def test_a_version_1_database_gains_the_image_table(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.executescript(
        "CREATE TABLE applied (id INTEGER PRIMARY KEY CHECK (id = 1), commit_id TEXT NOT NULL,"
        " config_path TEXT NOT NULL, document_json TEXT NOT NULL, received_at REAL NOT NULL);"
        "INSERT INTO applied VALUES (1, 'c0', 'serve.yaml', '{}', 1.0);"
        "PRAGMA user_version = 1;"
    )
    conn.close()
    with StateStore(tmp_path) as store:
        assert store.applied() == AppliedRecord("c0", "serve.yaml", "{}", 1.0)
        store.record_images("c0", ["app:0"])
        assert store.recent_images(3) == {"app:0"}
