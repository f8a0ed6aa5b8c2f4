"""The daemon's memory across restarts: the applied commit and its config, the last attempt and a
history of deploys, in SQLite inside the state directory.

The store holds an exclusive lock on the state directory, so two daemons cannot share it. It
heals what it can: a deleted database is recreated empty, a corrupt one is moved aside and
recreated; a full or read-only disk is a StateError and leaves the data as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from reconciler import state_timeline as timeline_sql
from reconciler.errors import StateError
from reconciler.model import HistoryEntry
from reconciler.records import CommitInfo, Pin, TimelineEntry

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_NAME = "state.db"
LOCK_NAME = "reconciler.lock"
SCHEMA_VERSION = 3  # 2: pin, commit_info, timeline; 3: image_use
HISTORY_KEEP = 1000  # rows kept; older ones are dropped on write
_CORRUPT = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_WHY = {
    3: "permission denied",
    5: "the database is busy",
    8: "the database is read-only",
    10: "a disk I/O error",
    13: "the disk is full",
    14: "the file cannot be opened",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS applied (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    commit_id TEXT NOT NULL,
    config_path TEXT NOT NULL,
    document_json TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS attempt (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    commit_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    errors_json TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    received_at REAL NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS image_use (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id TEXT NOT NULL UNIQUE,
    tags_json TEXT NOT NULL
);
"""
IMAGE_USE_KEEP = 100  # rows kept: far more commits than any --keep-images


@dataclass(frozen=True)
class AppliedRecord:
    commit: str
    config_path: str
    document_json: str
    received_at: float


@dataclass(frozen=True)
class AttemptRecord:
    commit: str
    outcome: str
    errors: tuple[str, ...]
    at: float


class StateStore:
    """SQLite state in `state_dir/state.db`, guarded by `state_dir/reconciler.lock`."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = Path(state_dir)
        self._path = self._dir / DB_NAME
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {self._dir}: {exc}") from None
        self._lock_fd = _take_lock(self._dir)
        self._mutex = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        try:
            with self._mutex:
                self._connection()
        except BaseException:
            os.close(self._lock_fd)
            raise

    def close(self) -> None:
        with self._mutex:
            self._disconnect()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the pin and the timeline (their SQL: state_timeline.py) ---------------------------

    def pin(self) -> Pin | None:
        return self._run(timeline_sql.read_pin)

    def set_pin(self, commit: str, at: float, reason: str) -> None:
        self._write(lambda c: timeline_sql.write_pin(c, Pin(commit, at, reason)))

    def clear_pin(self) -> None:
        self._write(timeline_sql.clear_pin)

    def record_commit_info(self, commit: str, info: CommitInfo) -> None:
        self._write(lambda c: timeline_sql.write_commit_info(c, commit, info))

    def add_timeline(self, entry: TimelineEntry) -> None:
        self._write(lambda c: timeline_sql.write_timeline(c, entry))

    def timeline(self, limit: int = 50) -> list[TimelineEntry]:
        """The newest `limit` timeline entries, newest first, with their commits' info."""
        return self._run(lambda c: timeline_sql.read_timeline(c, limit))

    # --- reads and writes ---------------------------------------------------------------

    def applied(self) -> AppliedRecord | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT commit_id, config_path, document_json, received_at FROM applied"
            ).fetchone()
        )
        return None if row is None else AppliedRecord(row[0], row[1], row[2], float(row[3]))

    def set_applied(
        self, commit: str, config_path: str, document_json: str, received_at: float
    ) -> None:
        sql = (
            "INSERT OR REPLACE INTO applied"
            " (id, commit_id, config_path, document_json, received_at) VALUES (1, ?, ?, ?, ?)"
        )
        self._write(lambda c: c.execute(sql, (commit, config_path, document_json, received_at)))

    def last_attempt(self) -> AttemptRecord | None:
        sql = "SELECT commit_id, outcome, errors_json, at FROM attempt"
        row = self._run(lambda c: c.execute(sql).fetchone())
        if row is None:
            return None
        return AttemptRecord(row[0], row[1], tuple(json.loads(row[2])), float(row[3]))

    def record_attempt(
        self,
        commit: str,
        outcome: str,
        errors: Sequence[str],
        at: float,
        message: str = "",
    ) -> None:
        """Remember the latest attempt; add a history row unless it repeats the newest one."""
        errors_json = json.dumps(list(errors))

        def write(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT OR REPLACE INTO attempt (id, commit_id, outcome, errors_json, at)"
                " VALUES (1, ?, ?, ?, ?)",
                (commit, outcome, errors_json, at),
            )
            newest = c.execute(
                "SELECT commit_id, outcome FROM history ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if newest != (commit, outcome):
                c.execute(
                    "INSERT INTO history (commit_id, outcome, received_at, message)"
                    " VALUES (?, ?, ?, ?)",
                    (commit, outcome, at, message),
                )
                c.execute(
                    "DELETE FROM history WHERE seq <= (SELECT MAX(seq) FROM history) - ?",
                    (HISTORY_KEEP,),
                )

        self._write(write)

    def history(self, limit: int = 50) -> list[HistoryEntry]:
        """The newest `limit` history entries, newest first."""
        rows = self._run(
            lambda c: c.execute(
                "SELECT commit_id, received_at, outcome, message FROM history"
                " ORDER BY seq DESC LIMIT ?",
                (max(0, limit),),
            ).fetchall()
        )
        return [HistoryEntry(r[0], float(r[1]), r[2], r[3]) for r in rows]

    def record_images(self, commit: str, tags: Sequence[str]) -> None:
        """Remember which built images an applied commit runs (the image GC keeps them while
        the commit is among the last few applied); applying it again makes it the newest."""

        def write(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM image_use WHERE commit_id = ?", (commit,))
            c.execute(
                "INSERT INTO image_use (commit_id, tags_json) VALUES (?, ?)",
                (commit, json.dumps(sorted(set(tags)))),
            )
            c.execute(
                "DELETE FROM image_use WHERE seq <= (SELECT MAX(seq) FROM image_use) - ?",
                (IMAGE_USE_KEEP,),
            )

        self._write(write)

    def recent_images(self, commits: int) -> set[str]:
        """The built image tags of the last `commits` applied commits."""
        rows = self._run(
            lambda c: c.execute(
                "SELECT tags_json FROM image_use ORDER BY seq DESC LIMIT ?", (max(0, commits),)
            ).fetchall()
        )
        return {tag for (tags_json,) in rows for tag in json.loads(tags_json)}

    # --- connection care ----------------------------------------------------------------

    def _write(self, body: Callable[[sqlite3.Connection], object]) -> None:
        def transaction(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                body(c)
                c.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full) leaves the transaction open: roll it back.
                if c.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        c.execute("ROLLBACK")
                raise

        self._run(transaction)

    def _run(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run `body` on a healthy connection; a corrupt database is replaced once and retried."""
        with self._mutex:
            if self._lock_fd < 0:
                raise StateError("the state store is closed")
            for attempt in (1, 2):
                try:
                    return body(self._connection())
                except sqlite3.DatabaseError as exc:
                    if _code(exc) not in _CORRUPT or attempt == 2:
                        raise self._error(exc) from None
                    self._quarantine(exc)
            raise AssertionError("unreachable")

    def _connection(self) -> sqlite3.Connection:
        """The open connection, reopened when the database file was deleted or replaced."""
        if self._conn is not None and self._inode == _inode(self._path):
            return self._conn
        stale = self._conn is not None
        self._disconnect()
        if stale:
            log.warning("the state database %s was deleted or replaced; reopening", self._path)
            # SQLite keeps the WAL of a moved database; it must not be replayed into the new file.
            _remove_wal(self._path)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            self._disconnect()
            if _code(exc) not in _CORRUPT:
                raise self._error(exc) from None
            self._quarantine(exc)
            self._conn = self._open()
        except OSError as exc:
            raise StateError(f"cannot open the state database {self._path}: {exc}") from None
        self._inode = _inode(self._path)
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if not self._path.exists():
            _remove_wal(self._path)  # a WAL left by a deleted database belongs to no one
        conn = sqlite3.connect(
            self._path, timeout=10, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn, self._inode = None, None

    def _quarantine(self, exc: sqlite3.DatabaseError) -> None:
        self._disconnect()
        aside = f"{self._path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        log.warning(
            "the state database %s is corrupt (%s); moved it to %s and starting empty",
            self._path,
            exc,
            aside,
        )
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self._path}{suffix}", f"{aside}{suffix}")

    def _error(self, exc: sqlite3.DatabaseError) -> StateError:
        why = _WHY.get(_code(exc), "an SQLite error")
        return StateError(f"cannot use the state database {self._path}: {why} ({exc})")


def _code(exc: sqlite3.Error) -> int:
    code = getattr(exc, "sqlite_errorcode", None)
    return int(code) & 0xFF if code is not None else -1


def _remove_wal(path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}{suffix}")


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _migrate(conn: sqlite3.Connection) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StateError(
            f"the state database has schema version {version}; this reconciler knows up to "
            f"{SCHEMA_VERSION} (was it written by a newer release?)"
        )
    if version < SCHEMA_VERSION:
        # One script, one transaction: the schema and its version number land together.
        conn.executescript(
            f"BEGIN IMMEDIATE; {_SCHEMA}{timeline_sql.SCHEMA}"
            f" PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        )


def _take_lock(state_dir: Path) -> int:
    """An exclusive flock on the lock file, which then holds our pid."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateError(f"cannot create the lock file {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateError(
            f"another reconciler (pid {holder}) is using the state directory {state_dir}; "
            "stop it or use a different --state-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
