"""The one tar archive copied into a replica before it starts: the runtime and the user's code.

  opt/serve/...              the replica runtime (this package's `reconciler/replica/` files)
  app/work/...               working_dir (CodeTree.dirs[0])
  app/py_modules/<name>/...  every other CodeTree directory (a remote one: its contents)

The same layout goes into a deployment's image (`images.py`) when the engine built one.

Files are owned by root and world-readable, so the replica (uid 65534) reads but cannot change
them. Hidden directories and byte-code caches are left out (as the code digest leaves them out).
Symlinks inside the repository are copied as the files they point to; one that leaves the
repository is refused. Timestamps are fixed, so equal inputs give equal bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from reconciler.errors import EngineError
from reconciler.model import CodeTree

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "replica"
SKIP_DIRS = frozenset({"__pycache__", ".git"})


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk(src: str, root: str, seen: frozenset[str] = frozenset()) -> Iterator[tuple[str, str]]:
    """(relative path, real file path) of every file under `src`, symlinks resolved."""
    real_src = os.path.realpath(src)
    if real_src in seen:
        return  # a symlink loop
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        real = os.path.realpath(entry.path)
        if entry.is_symlink() and not _inside(real, root):
            raise EngineError(f"code file {entry.path} is a symlink that leaves the repository")
        if os.path.isdir(real):
            # Hidden directories (.mypy_cache, .venv...) are skipped as the code digest skips
            # them: a stray 4 MB type-check cache was copied into every container.
            if entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                for rel, path in _walk(entry.path, root, seen | {real_src}):
                    yield f"{entry.name}/{rel}", path
        elif os.path.isfile(real):
            yield entry.name, real


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, path: str) -> None:
    data = Path(path).read_bytes()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_tree(tar: tarfile.TarFile, dest: str, src: str, root: str) -> None:
    _add_dir(tar, dest)
    made = {dest}
    for rel, path in _walk(src, root):
        parent = dest
        for part in rel.split("/")[:-1]:
            parent = f"{parent}/{part}"
            if parent not in made:
                _add_dir(tar, parent)
                made.add(parent)
        _add_file(tar, f"{dest}/{rel}", path)


def code_destinations(code: CodeTree) -> list[tuple[str, str, str]]:
    """(archive directory, absolute source directory, the root its symlinks must stay in) for
    each directory of the code tree. A remote py_modules archive is unpacked straight into
    app/py_modules: Ray puts the archive's contents on the import path."""
    root = os.path.realpath(code.root)
    result = []
    for i, rel in enumerate(code.dirs):
        fetched = code.location(rel)
        if fetched is not None:
            src = os.path.realpath(fetched)
            dest = "app/work" if i == 0 else "app/py_modules"
            result.append((dest, src, src))
            continue
        src = os.path.realpath(os.path.join(root, rel))
        if not _inside(src, root) or not os.path.isdir(src):
            raise EngineError(f"code directory {rel!r} is not a directory inside the repository")
        dest = "app/work" if i == 0 else f"app/py_modules/{os.path.basename(src)}"
        result.append((dest, src, root))
    return result


def write_bundle(
    tar: tarfile.TarFile, code: CodeTree | None, runtime_dir: Path = RUNTIME_DIR
) -> None:
    """The runtime and the code, into an open tar (the bundle, or an image's build context)."""
    _add_dir(tar, "opt")
    _add_tree(tar, "opt/serve", str(runtime_dir), str(runtime_dir))
    _add_dir(tar, "app")
    if code is None or not code.dirs:
        _add_dir(tar, "app/work")
        return
    if len(code.dirs) > 1:
        _add_dir(tar, "app/py_modules")
    for dest, src, root in code_destinations(code):
        _add_tree(tar, dest, src, root)


def build_bundle(code: CodeTree | None, runtime_dir: Path = RUNTIME_DIR) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        write_bundle(tar, code, runtime_dir)
    return buffer.getvalue()


def runtime_digest(runtime_dir: Path = RUNTIME_DIR) -> str:
    """A digest of the replica runtime's files (part of an image's tag, not of any version)."""
    digest = hashlib.sha256()
    for rel, path in _walk(str(runtime_dir), str(runtime_dir)):
        digest.update(f"{rel}\0{os.access(path, os.X_OK)}\0".encode())
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()
