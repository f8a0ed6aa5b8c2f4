"""The code a deployment runs: check that working_dir and py_modules are directories inside the
repository (no absolute paths, no `..`, no remote URIs, no symlinks leading out), and hash every
regular file under them, within size and count caps."""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.model import CodeTree

MAX_FILES = 10_000
MAX_TOTAL_BYTES = 50 << 20
# Never part of the code: hidden directories (.git, .github, .venv...) and byte-code caches, which
# change without the code changing. Serve config files are skipped by the caller's predicate, so
# that editing num_replicas or user_config never looks like a code change.
SKIPPED_DIRS = frozenset({"__pycache__"})
SkipFile = Callable[[str, str], bool]  # (repository-relative path, full path) -> skip?
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^(s3|gs|gcs|conda|pip):")


class TreeError(Exception):
    """A directory cannot be used; the message says why in plain words."""


@dataclass(frozen=True)
class _Budget:
    files: int = 0
    size: int = 0


def normalize_dir(rel: str, key: str = "working_dir") -> str:
    """A clean repository-relative directory ('.' for the root), or TreeError."""
    if _URI.match(rel):
        raise TreeError(
            f"{key} '{rel}' is a remote URI; commit the code to this repository and "
            "use a relative path"
        )
    if rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", rel):
        raise TreeError(
            f"{key} '{rel}' is an absolute path; use a path relative to the repository root"
        )
    if "\0" in rel:
        raise TreeError(f"{key} contains a NUL character")
    clean = posixpath.normpath(rel.replace("\\", "/"))
    if clean == ".." or clean.startswith("../"):
        raise TreeError(f"{key} '{rel}' leaves the repository ('..'); use a directory inside it")
    return clean


def check_dir(root: Path, rel: str, key: str = "working_dir") -> str:
    """`normalize_dir`, plus: it exists, is a directory, and resolves inside the repository."""
    clean = normalize_dir(rel, key)
    real_root = os.path.realpath(root)
    target = os.path.join(real_root, clean)
    real = os.path.realpath(target)
    if not _inside(real, real_root, allow_root=True):
        raise TreeError(f"{key} '{rel}' is a symlink to a place outside the repository")
    if not os.path.exists(real):
        raise TreeError(f"{key} '{rel}' does not exist in the repository")
    if not os.path.isdir(real):
        raise TreeError(f"{key} '{rel}' is a file, not a directory")
    return clean


def _inside(real: str, real_root: str, *, allow_root: bool = False) -> bool:
    if real == real_root:
        return allow_root
    return real.startswith(real_root.rstrip(os.sep) + os.sep)


def build_tree(root: Path, dirs: Sequence[str], skip: SkipFile | None = None) -> CodeTree:
    """Hash every regular file under `dirs` (already checked) that `skip` does not exclude.
    TreeError on a symlink leading outside the repository or when the caps are exceeded."""
    real_root = os.path.realpath(root)
    files: dict[str, str] = {}
    budget = _Budget()
    for rel in dirs:
        budget = _hash_dir(real_root, rel, files, budget, skip or (lambda _rel, _full: False))
    return CodeTree(
        root=str(Path(root).resolve()), dirs=tuple(dirs), files=tuple(sorted(files.items()))
    )


def _hash_dir(
    real_root: str, rel: str, files: dict[str, str], budget: _Budget, skip: SkipFile
) -> _Budget:
    top = os.path.join(real_root, rel)
    for here, subdirs, names in os.walk(top, followlinks=False):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in [*subdirs, *sorted(names)]:
            full = os.path.join(here, name)
            relpath = posixpath.normpath(os.path.relpath(full, real_root).replace(os.sep, "/"))
            if os.path.islink(full) and not _inside(os.path.realpath(full), real_root):
                raise TreeError(f"'{relpath}' is a symlink to a place outside the repository")
            if name in subdirs or relpath in files or name.endswith(".pyc") or skip(relpath, full):
                continue
            budget = _hash_file(full, relpath, files, budget)
    return budget


def _hash_file(full: str, relpath: str, files: dict[str, str], budget: _Budget) -> _Budget:
    try:
        info = os.stat(full)
    except OSError:
        return budget  # a dangling symlink inside the repository: nothing to copy
    if not stat.S_ISREG(info.st_mode):
        return budget
    budget = _Budget(budget.files + 1, budget.size + info.st_size)
    if budget.files > MAX_FILES:
        raise TreeError(
            f"the code holds more than {MAX_FILES} files; keep working_dir and "
            "py_modules to the code the replicas need"
        )
    if budget.size > MAX_TOTAL_BYTES:
        raise TreeError(
            "the code is larger than 50 MiB; keep working_dir and py_modules to the "
            "code the replicas need, and bake large files into the image"
        )
    digest = hashlib.sha256()
    with open(full, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    files[relpath] = digest.hexdigest()
    return budget
