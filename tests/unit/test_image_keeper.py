"""Which built images the GC keeps: those of the last N applied commits (in the daemon's store,
across restarts; in memory for `up`), against a behavioural model of the engine's images."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any, cast

from reconciler.app.engine import ImageKeeper
from reconciler.state import StateStore


class Images:
    """The engine's images at the GC seam: a set of tags; those not kept are removed."""

    def __init__(self) -> None:
        self.tags: set[str] = set()

    def collect_images(self, keep: Collection[str]) -> list[str]:
        removed = sorted(self.tags - set(keep))
        self.tags -= set(removed)
        return removed


def _apply(keeper: ImageKeeper, images: Images, commit: str, *tags: str) -> None:
    images.tags |= set(tags)
    keeper.pending = frozenset(tags)
    keeper.applied(commit)


def test_the_daemon_keeps_the_images_of_the_last_commits_across_restarts(tmp_path: Path) -> None:
    images = Images()
    with StateStore(tmp_path) as store:
        keeper = ImageKeeper(cast(Any, images), keep=2, store=store, background=False)
        _apply(keeper, images, "c1", "app:1", "app:shared")
        _apply(keeper, images, "c2", "app:2", "app:shared")
        assert images.tags == {"app:1", "app:2", "app:shared"}
        _apply(keeper, images, "c3", "app:3")
        assert images.tags == {"app:2", "app:3", "app:shared"}  # c1's own image went
    with StateStore(tmp_path) as store:  # a restarted daemon remembers c2 and c3
        keeper = ImageKeeper(cast(Any, images), keep=2, store=store, background=False)
        _apply(keeper, images, "c4", "app:4")
        assert images.tags == {"app:3", "app:4"}


def test_up_keeps_the_last_distinct_configs_in_memory() -> None:
    images = Images()
    keeper = ImageKeeper(cast(Any, images), keep=2, background=False)
    _apply(keeper, images, "worktree", "app:1")
    _apply(keeper, images, "worktree", "app:2")
    for _ in range(3):  # up re-reads an unchanged tree every pass: nothing new
        _apply(keeper, images, "worktree", "app:2")
    assert images.tags == {"app:1", "app:2"}
    _apply(keeper, images, "worktree", "app:3")
    assert images.tags == {"app:2", "app:3"}
