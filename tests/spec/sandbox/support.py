"""Helpers of the sandbox tests: the replica runtime with `serve_replica.describe` (its own once
it ships one, else a copy with the stand-in next to this file), and what a sandbox leaves."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from reconciler.runtime import labels
from reconciler.runtime.bundle import RUNTIME_DIR

HERE = Path(__file__).parent
STANDIN = HERE / "describe_standin.py"


def runtime_with_describe(tmp: Path) -> Path:
    """SANDBOX_TEST_RUNTIME may name another runtime directory to test against (a branch's)."""
    other = os.environ.get("SANDBOX_TEST_RUNTIME")
    if other:
        return Path(other)
    if (RUNTIME_DIR / "serve_replica" / "describe.py").is_file():
        return RUNTIME_DIR
    target = tmp / "runtime"
    if not target.exists():
        shutil.copytree(RUNTIME_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(STANDIN, target / "serve_replica" / "describe.py")
    return target


def leftovers(client: Any, owner: str) -> list[str]:
    """Containers and volumes labelled with `owner` (a sandbox must leave none)."""
    label = f"{labels.OWNER}={owner}"
    found = [c.name for c in client.containers.list(all=True, filters={"label": label})]
    found += [v.name for v in client.volumes.list(filters={"label": label})]
    return found
