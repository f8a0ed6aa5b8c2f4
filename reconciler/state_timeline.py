"""The SQL of the pin, of what git says about each commit judged and of the dashboard's commit
timeline, for `state.StateStore` (which owns the connection, its lock and its transactions).

The `history` table stays the branch's deploys, which `rollback` steps back along; the timeline
also records pins, unpins and refused pins, with each refused commit's errors and each deployed
commit's changes per deployment, computed once when the commit is judged.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from reconciler.records import Change, CommitInfo, Event, Pin, TimelineEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS pin (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    commit_id TEXT NOT NULL,
    at REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commit_info (
    commit_id TEXT PRIMARY KEY,
    author TEXT NOT NULL,
    authored_at REAL NOT NULL,
    subject TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS timeline (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_id TEXT NOT NULL,
    event TEXT NOT NULL,
    at REAL NOT NULL,
    errors_json TEXT NOT NULL,
    changes_json TEXT NOT NULL,
    message TEXT NOT NULL
);
"""
TIMELINE_KEEP = 500  # rows kept; older ones are dropped on write
COMMIT_INFO_KEEP = 2000


def read_pin(c: sqlite3.Connection) -> Pin | None:
    row = c.execute("SELECT commit_id, at, reason FROM pin").fetchone()
    return None if row is None else Pin(row[0], float(row[1]), row[2])


def write_pin(c: sqlite3.Connection, pin: Pin) -> None:
    c.execute(
        "INSERT OR REPLACE INTO pin (id, commit_id, at, reason) VALUES (1, ?, ?, ?)",
        (pin.commit, pin.at, pin.reason),
    )


def clear_pin(c: sqlite3.Connection) -> None:
    c.execute("DELETE FROM pin")


def write_commit_info(c: sqlite3.Connection, commit: str, info: CommitInfo) -> None:
    c.execute(
        "INSERT OR REPLACE INTO commit_info (commit_id, author, authored_at, subject)"
        " VALUES (?, ?, ?, ?)",
        (commit, info.author, info.authored_at, info.subject),
    )
    c.execute(
        "DELETE FROM commit_info WHERE rowid <= (SELECT MAX(rowid) FROM commit_info) - ?",
        (COMMIT_INFO_KEEP,),
    )


def write_timeline(c: sqlite3.Connection, entry: TimelineEntry) -> None:
    changes = [
        {"app": ch.app, "deployment": ch.deployment, "kind": ch.kind, "reasons": list(ch.reasons)}
        for ch in entry.changes
    ]
    c.execute(
        "INSERT INTO timeline (commit_id, event, at, errors_json, changes_json, message)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            entry.commit,
            entry.event.value,
            entry.at,
            json.dumps(list(entry.errors)),
            json.dumps(changes),
            entry.message,
        ),
    )
    c.execute(
        "DELETE FROM timeline WHERE seq <= (SELECT MAX(seq) FROM timeline) - ?", (TIMELINE_KEEP,)
    )


def read_timeline(c: sqlite3.Connection, limit: int) -> list[TimelineEntry]:
    rows = c.execute(
        "SELECT t.commit_id, t.at, t.event, t.errors_json, t.changes_json, t.message,"
        " i.author, i.authored_at, i.subject FROM timeline t"
        " LEFT JOIN commit_info i ON i.commit_id = t.commit_id"
        " ORDER BY t.seq DESC LIMIT ?",
        (max(0, limit),),
    ).fetchall()
    return [_entry(row) for row in rows]


def _entry(row: Sequence[object]) -> TimelineEntry:
    commit, at, event, errors_json, changes_json, message, author, authored, subject = row
    changes = tuple(
        Change(str(c["app"]), str(c["deployment"]), str(c["kind"]), tuple(c["reasons"]))
        for c in json.loads(str(changes_json))
    )
    return TimelineEntry(
        commit=str(commit),
        at=float(str(at)),
        event=Event(str(event)),
        info=CommitInfo(str(author or ""), float(str(authored or 0)), str(subject or "")),
        errors=tuple(json.loads(str(errors_json))),
        changes=changes,
        message=str(message),
    )
