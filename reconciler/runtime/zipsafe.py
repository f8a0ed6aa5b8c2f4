"""Unpack a fetched zip archive, checking every member first: no absolute paths or drive letters,
no `..`, no device files, FIFOs or sockets, no symlink whose target leaves the archive (or that
another member would be written through), and caps on the members and on the unpacked bytes
(counted while writing: a member's declared size may lie). Anything else refuses the archive as
a whole: nothing is written outside `dest`, and `dest` is left half-filled only on an I/O error.

As Ray does for remote URIs, a single top-level directory (GitHub's `repo-main/`) is stripped,
ignoring macOS's `__MACOSX/` metadata directory.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import FetchRefused

MAC_METADATA = "__MACOSX"
_CHUNK = 1 << 16


@dataclass(frozen=True)
class _Member:
    info: zipfile.ZipInfo
    rel: str  # the path inside dest, top-level directory stripped
    kind: str  # "file", "dir" or "link"


def unpack(archive: Path, dest: Path, *, max_bytes: int, max_files: int) -> None:
    """Unpack `archive` into the new directory `dest`, or FetchRefused saying why not."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchRefused(f"the archive is not a zip file ({exc})") from None
    with zf:
        infos = [i for i in zf.infolist() if _top(i.filename) != MAC_METADATA]
        if len(infos) > max_files:
            raise FetchRefused(f"the archive holds more than {max_files} members")
        declared = sum(i.file_size for i in infos)
        if declared > max_bytes:
            raise FetchRefused(
                f"the archive unpacks to {declared} bytes, more than the cap of {max_bytes}"
            )
        members = _members(infos, _single_top(infos))
        dest.mkdir(parents=True)
        try:
            _extract(zf, members, dest, max_bytes)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            raise FetchRefused(f"the archive is damaged ({exc})") from None
        except OSError as exc:  # a member that is a file in one place and a directory in another
            raise FetchRefused(f"the archive cannot be unpacked ({exc.strerror or exc})") from None


def _extract(zf: zipfile.ZipFile, members: list[_Member], dest: Path, max_bytes: int) -> None:
    budget = max_bytes
    for m in members:
        if m.kind == "dir":
            (dest / m.rel).mkdir(parents=True, exist_ok=True)
        elif m.kind == "file":
            budget -= _write(zf, m, dest / m.rel, budget)
    for m in members:  # links last, so that no member is written through one
        if m.kind == "link":
            (dest / m.rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(_link_target(zf, m.info), dest / m.rel)
    _check_links(dest, members)


def _check_links(dest: Path, members: list[_Member]) -> None:
    """Each link, resolved on disk (through any chain of links), stays inside `dest`: a lexical
    check is not enough (`a/up -> ..` then `x -> a/up/..` leaves it)."""
    real_dest = os.path.realpath(dest)
    for m in members:
        if m.kind != "link":
            continue
        real = os.path.realpath(dest / m.rel)
        if real != real_dest and not real.startswith(real_dest + os.sep):
            raise FetchRefused(
                f"archive member {m.info.filename!r} is a symlink out of the archive"
            )


def _top(name: str) -> str:
    return name.split("/", 1)[0]


def _single_top(infos: list[zipfile.ZipInfo]) -> str | None:
    """The one directory every member lives in, or None."""
    tops = {_top(i.filename) for i in infos}
    if len(tops) != 1:
        return None
    top = tops.pop()
    inside = [i for i in infos if i.filename.startswith(top + "/") and i.filename != top + "/"]
    whole = all(i.filename in (top, top + "/") or i in inside for i in infos)
    return top if inside and whole and top not in ("", ".", "..") else None


def _members(infos: list[zipfile.ZipInfo], top: str | None) -> list[_Member]:
    members = []
    for info in infos:
        rel = _checked_name(info.filename)
        if top is not None:
            rel = rel[len(top) :].lstrip("/")
        if not rel:
            continue
        members.append(_Member(info, rel, _kind(info)))
    links = {m.rel for m in members if m.kind == "link"}
    for m in members:
        if any(p in links for p in _ancestors(m.rel)):
            raise FetchRefused(f"archive member {m.info.filename!r} lies under a symlink")
    return members


def _ancestors(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _checked_name(name: str) -> str:
    if "\0" in name or "\\" in name:
        raise FetchRefused(f"archive member {name!r} has a NUL or backslash in its name")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise FetchRefused(f"archive member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise FetchRefused(f"archive member {name!r} leaves the archive ('..': zip-slip)")
    return "/".join(parts)


def _kind(info: zipfile.ZipInfo) -> str:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if info.is_dir() or kind == stat.S_IFDIR:
        return "dir"
    if kind == stat.S_IFLNK:
        return "link"
    if kind not in (0, stat.S_IFREG):
        raise FetchRefused(
            f"archive member {info.filename!r} is a device, FIFO or socket, not a file"
        )
    return "file"


def _link_target(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    target = zf.read(info).decode("utf-8", errors="replace")
    rel = _checked_name(info.filename)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if target.startswith("/") or joined == ".." or joined.startswith("../"):
        raise FetchRefused(
            f"archive member {info.filename!r} is a symlink to {target!r}, outside the archive"
        )
    return target


def _write(zf: zipfile.ZipFile, m: _Member, path: Path, budget: int) -> int:
    """Write one file, counting its real size against the budget; the bytes written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with zf.open(m.info) as source, open(path, "wb") as target:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > budget:
                raise FetchRefused("the archive unpacks to more bytes than the cap")
            target.write(chunk)
    executable = (m.info.external_attr >> 16) & 0o111
    os.chmod(path, 0o755 if executable else 0o644)
    return written
