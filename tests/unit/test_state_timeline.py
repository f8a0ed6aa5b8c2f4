"""The pin and the commit timeline in the state store: they survive a reopen, a version-1
database gains them without losing its history, and the timeline stays bounded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reconciler import state_timeline
from reconciler.records import Change, CommitInfo, Event, Pin, TimelineEntry
from reconciler.state import StateStore

V1_SCHEMA = """
CREATE TABLE applied (id INTEGER PRIMARY KEY CHECK (id = 1), commit_id TEXT NOT NULL,
    config_path TEXT NOT NULL, document_json TEXT NOT NULL, received_at REAL NOT NULL);
CREATE TABLE attempt (id INTEGER PRIMARY KEY CHECK (id = 1), commit_id TEXT NOT NULL,
    outcome TEXT NOT NULL, errors_json TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, commit_id TEXT NOT NULL,
    outcome TEXT NOT NULL, received_at REAL NOT NULL, message TEXT NOT NULL);
INSERT INTO history (commit_id, outcome, received_at, message) VALUES ('c1', 'applied', 1, '');
PRAGMA user_version = 1;
"""


def test_the_pin_survives_a_reopen_and_clears(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        assert store.pin() is None
        store.set_pin("c1", 5.0, "rollback from commit c2")
    with StateStore(tmp_path) as store:
        assert store.pin() == Pin("c1", 5.0, "rollback from commit c2")
        store.set_pin("c3", 6.0, "pinned")
        assert store.pin() == Pin("c3", 6.0, "pinned")
        store.clear_pin()
    with StateStore(tmp_path) as store:
        assert store.pin() is None


def test_timeline_entries_come_back_newest_first_with_their_commit_info(tmp_path: Path) -> None:
    change = Change("default", "Mango", "restart", ("code changed: fruit.py",))
    with StateStore(tmp_path) as store:
        store.record_commit_info("c1", CommitInfo("Ada", 100.0, "mango costs 5"))
        store.add_timeline(TimelineEntry("c1", 1.0, Event.APPLIED, changes=(change,)))
        store.add_timeline(
            TimelineEntry("c2", 2.0, Event.INVALID, errors=("serve_config.yaml:3:5: bad",))
        )
        store.add_timeline(TimelineEntry("c1", 3.0, Event.PINNED, message="rollback"))
    with StateStore(tmp_path) as store:
        entries = store.timeline(10)
    assert [(e.commit, e.event) for e in entries] == [
        ("c1", Event.PINNED),
        ("c2", Event.INVALID),
        ("c1", Event.APPLIED),
    ]
    assert entries[0].info == CommitInfo("Ada", 100.0, "mango costs 5")
    assert entries[0].message == "rollback"
    assert entries[1].info == CommitInfo() and entries[1].errors == ("serve_config.yaml:3:5: bad",)
    assert entries[2].changes == (change,)


def test_the_timeline_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_timeline, "TIMELINE_KEEP", 5)
    with StateStore(tmp_path) as store:
        for i in range(12):
            store.add_timeline(TimelineEntry(f"c{i}", float(i), Event.APPLIED))
        assert [e.commit for e in store.timeline(100)] == [f"c{i}" for i in range(11, 6, -1)]


def test_a_version_1_database_gains_the_new_tables_and_keeps_its_history(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.db")
    conn.executescript(V1_SCHEMA)
    conn.close()
    with StateStore(tmp_path) as store:
        assert [h.commit for h in store.history()] == ["c1"]
        assert store.pin() is None and store.timeline() == []
        store.set_pin("c1", 2.0, "pinned")
        assert store.pin() == Pin("c1", 2.0, "pinned")
