"""Which files of a repository checkout are Serve configs: `serve_config.yaml`, and any
`*config*.yaml` / `*config*.yml` whose top level has an `import_path` or `applications` key."""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

_TOP_KEY = re.compile(rb"^[\"']?(import_path|applications)[\"']?\s*:", re.MULTILINE)
_PATTERNS = ("*config*.yaml", "*config*.yml")
_MAX_SCAN = 1 << 20
_MAX_WALK = 50_000


def is_serve_config(path: str | Path) -> bool:
    """True for `serve_config.yaml`, or a `*config*.y(a)ml` file with a top-level import_path
    or applications key (read cheaply, without parsing)."""
    name = os.path.basename(path)
    if name == "serve_config.yaml":
        return True
    if not any(fnmatch.fnmatch(name, p) for p in _PATTERNS):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(_MAX_SCAN)
    except OSError:
        return False
    return _TOP_KEY.search(head) is not None


def find_config_files(root: Path) -> list[Path]:
    """Every Serve config in the checkout, sorted, skipping hidden and cache directories."""
    found: list[Path] = []
    seen = 0
    for here, subdirs, names in os.walk(root):
        subdirs[:] = sorted(
            d for d in subdirs if not d.startswith(".") and d not in ("__pycache__", "node_modules")
        )
        for name in sorted(names):
            seen += 1
            full = Path(here) / name
            if seen <= _MAX_WALK and full.is_file() and is_serve_config(full):
                found.append(full)
    return found
