"""Fixtures of the runtime tests: a code tree on disk and local replica processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime_appcode import APP_SOURCE
from runtime_support import LocalReplica

from reconciler.model import CodeTree


@pytest.fixture
def code_tree(tmp_path: Path) -> CodeTree:
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "shop.py").write_text(APP_SOURCE)
    return CodeTree(root=str(root), dirs=("app",), files=(("app/shop.py", "test"),))


@pytest.fixture
def local_replica(code_tree: CodeTree, tmp_path: Path) -> Iterator[Callable[..., LocalReplica]]:
    started: list[LocalReplica] = []

    def start(deployment: str, import_path: str = "shop:graph", **env: str) -> LocalReplica:
        state_dir = tmp_path / f"state-{len(started)}"
        replica = LocalReplica(
            Path(code_tree.root) / "app",
            state_dir,
            SERVE_DEPLOYMENT=deployment,
            SERVE_IMPORT_PATH=import_path,
            **env,
        )
        started.append(replica)
        return replica

    yield start
    for replica in started:
        replica.stop()
