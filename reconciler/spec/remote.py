"""Remote working_dir and py_modules (Ray's "handle dependencies" form: a zip at an https:// or
file:// URI). The loader never does network I/O itself: a `Fetch` callable, wired by the
composition root, brings the archive onto this machine and unpacks it (checked member by member)
into an immutable directory; here that directory is scanned and hashed like a repository path.

An optional pin, `x-sha256` in the same runtime_env (one hex digest for working_dir, or a mapping
URI -> digest), makes the fetch refuse other content. As in Ray, the URI names the content: a
URI already fetched by this process is not fetched again, so to roll new code, change the URI
(a tag or commit in it) or the pin.

The code reader reads the application's module from the working_dir: a remote working_dir is read
in its unpacked directory (repository py_modules are then not searched for the graph; issues name
its files relative to the archive), and remote py_modules, packages the graph imports, are not
searched either.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.errors import FetchRefused
from reconciler.model import CodeTree
from reconciler.spec.codetree import SkipFile, build_tree

Fetch = Callable[[str, str | None], Path]
"""(URI, pinned sha256 hex or None) -> the unpacked directory. Raises FetchRefused (the content
is unusable: the commit is refused) or FetchUnavailable (retry later)."""

PIN_KEY = "x-sha256"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://|^(s3|gs|gcs|conda|pip):")
_FETCHED = ("https", "http", "file")
_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def is_uri(value: str) -> bool:
    return _SCHEME.match(value) is not None


def uri_problem(uri: str, key: str) -> str | None:
    """Why a remote working_dir / py_modules entry cannot be fetched at all, or None."""
    match = _SCHEME.match(uri)
    scheme = (match.group(1) or match.group(2) or "").lower() if match else ""
    if scheme not in _FETCHED:
        return (
            f"{key} '{uri}': only https:// and file:// zip archives are fetched here "
            f"({scheme}:// is not); or commit the code to this repository and use a relative path"
        )
    if not uri.split("?", 1)[0].split("#", 1)[0].lower().endswith(".zip"):
        return f"{key} '{uri}' must name a .zip archive (as Ray's remote URIs do)"
    if any(c.isspace() for c in uri) or "\0" in uri:
        return f"{key} '{uri}' holds whitespace"
    return None


def pins(runtime_env: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
    """(URI -> pinned sha256, a problem with the x-sha256 value or None)."""
    raw = runtime_env.get(PIN_KEY)
    if raw is None:
        return {}, None
    if isinstance(raw, str):
        working_dir = runtime_env.get("working_dir")
        found = {working_dir: raw} if isinstance(working_dir, str) else {}
    elif isinstance(raw, Mapping):
        found = {str(k): v for k, v in raw.items()}
    else:
        return {}, f"{PIN_KEY} is a sha256 hex digest, or a mapping URI -> digest"
    bad = [str(v) for v in found.values() if not isinstance(v, str) or not _HEX.match(v)]
    if bad:
        return {}, f"{PIN_KEY}: '{bad[0]}' is not a sha256 hex digest (64 hex digits)"
    return {k: v.lower() for k, v in found.items()}, None


def fetch_entry(
    uri: str, key: str, runtime_env: Mapping[str, Any], fetch: Fetch | None
) -> tuple[str | None, str, bool]:
    """(the unpacked directory, "", False), or (None, the problem, whether it is about the
    x-sha256 pin rather than the URI). FetchUnavailable passes through."""
    pinned, bad_pin = pins(runtime_env)
    if bad_pin:
        return None, bad_pin, True
    problem = uri_problem(uri, key)
    if problem is None and fetch is None:
        problem = f"{key} '{uri}' is remote, and this command does not fetch archives"
    if problem is not None or fetch is None:
        return None, problem or "", False
    try:
        return str(fetch(uri, pinned.get(uri))), "", False
    except FetchRefused as exc:
        return None, f"{key} '{uri}': {exc}", False


def reader_dirs(
    root: Path, dirs: Sequence[str], fetched: Mapping[str, str]
) -> tuple[Path, str, list[str]]:
    """(root, working_dir, py_modules) for the code reader: the repository, or a remote
    working_dir's unpacked archive. Remote py_modules are not read (packages it imports)."""
    working_dir = dirs[0]
    if working_dir in fetched:
        return Path(fetched[working_dir]), ".", []
    return root, working_dir, [d for d in dirs[1:] if d not in fetched]


def build(root: Path, dirs: Sequence[str], fetched: Mapping[str, str], skip: SkipFile) -> CodeTree:
    """The CodeTree of repository and remote directories together (TreeError on a cap or a
    link out). Remote files are keyed URI/path, so a diff names them."""
    local = [d for d in dirs if d not in fetched]
    files = dict(build_tree(root, local, skip=skip).files) if local else {}
    external = []
    for uri in (d for d in dirs if d in fetched):
        unpacked = build_tree(Path(fetched[uri]), ["."], skip=skip)
        files.update((f"{uri}/{path}", sha) for path, sha in unpacked.files)
        external.append((uri, fetched[uri]))
    return CodeTree(
        root=str(root.resolve()),
        dirs=tuple(dirs),
        files=tuple(sorted(files.items())),
        external=tuple(external),
    )
