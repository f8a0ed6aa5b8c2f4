"""The commit timeline the target keeps: what happened to each commit it judged (applied,
refused with its errors, pinned, unpinned), with what git says about it, newest first; in the
state store for a restarted daemon, and in memory for every snapshot. Recording is best effort: a
full disk costs an entry, never a verdict."""

from __future__ import annotations

import logging

from reconciler import plan as planner
from reconciler.errors import StateError
from reconciler.model import ServeConfig
from reconciler.ports import Source, Store
from reconciler.records import Change, CommitInfo, TimelineEntry

log = logging.getLogger(__name__)

SHOWN = 30  # entries kept in memory (and in every snapshot)


class Timeline:
    def __init__(self, *, store: Store, source: Source) -> None:
        self._store, self._source = store, source
        self.entries: tuple[TimelineEntry, ...] = tuple(store.timeline(SHOWN))

    def note(self, entry: TimelineEntry) -> None:
        self.entries = (entry, *self.entries[: SHOWN - 1])
        try:
            if entry.info.subject or entry.info.author:
                self._store.record_commit_info(entry.commit, entry.info)
            self._store.add_timeline(entry)
        except StateError as exc:
            log.warning("could not record commit %s in the timeline: %s", entry.commit[:12], exc)

    def describe(self, commit: str) -> CommitInfo:
        """What git says about a commit (empty when it cannot say: the verdict stands anyway)."""
        try:
            return self._source.commit_info(commit)
        except Exception as exc:
            log.warning("cannot read the author and subject of commit %s: %s", commit[:12], exc)
            return CommitInfo()

    def info_of(self, commit: str) -> CommitInfo:
        known = (e.info for e in self.entries if e.commit == commit and e.info.subject)
        return next(known, None) or self.describe(commit)


def changes(base: ServeConfig | None, config: ServeConfig) -> tuple[Change, ...]:
    """What replacing `base` with `config` does, per deployment: the planner's own
    classification (plan.classify), computed once, when the commit is accepted."""
    return tuple(
        Change(c.app, c.deployment, c.kind, c.reasons)
        for c in planner.diff_configs(base, config)
        if c.kind != planner.UNCHANGED or c.reasons
    )
