"""runtime_env `pip` and `uv`: the requirement list of a deployment, each entry checked (PEP 508)
and located (the config's line and column, or the requirements file's line), as Ray reads them:
a list of requirement strings, a requirements-file path, or `{packages: ..., pip_check,
pip_version}` (`uv`: `uv_check`, `uv_version`). Duplicates are dropped, order kept; an empty list
means no packages. Both keys are installed with pip here (offline, from wheels the reconciler
resolves on its host), so `uv_version` is accepted and has no effect. `conda` is refused by the
schema. Nothing is resolved or fetched here: that is the engine's work when it builds the image.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigIssue
from reconciler.model import PackageSet, Requirement
from reconciler.spec import pep508
from reconciler.spec.issues import DocPath, Issues, format_path

MAX_REQUIREMENTS_BYTES = 1 << 20
_CHECK_KEY = {"pip": "pip_check", "uv": "uv_check"}


def read_packages(
    runtime_env: Mapping[str, Any], where: DocPath, issues: Issues, root: Path
) -> PackageSet | None:
    """The PackageSet of a (merged) runtime_env whose pip/uv key sits at `where` in the
    document; None when it has none, or after reporting what is wrong (the caller counts
    issues)."""
    given = [key for key in ("pip", "uv") if runtime_env.get(key) is not None]
    if len(given) > 1:
        issues.at_key(
            (*where, "uv"), "give pip or uv, not both (Ray's rule): both are installed with pip"
        )
        return None
    if not given:
        return None
    key = given[0]
    return _Reader(issues, root, (*where, key)).read(key, runtime_env[key])


class _Reader:
    def __init__(self, issues: Issues, root: Path, at: DocPath) -> None:
        self.issues = issues
        self.root = root
        self.at = at
        self.ok = True

    def read(self, key: str, value: Any) -> PackageSet | None:
        check, pip_version = False, None
        entries_at: DocPath = self.at
        entries = value
        if isinstance(value, Mapping):
            entries, entries_at = value.get("packages"), (*self.at, "packages")
            check = value.get(_CHECK_KEY[key]) is True
            if key == "pip" and isinstance(value.get("pip_version"), str):
                pip_version = self._pip_version(value["pip_version"])
        if isinstance(entries, str):
            found = self._from_file(entries, entries_at)
        elif isinstance(entries, list):
            found = self._from_list(entries, entries_at)
        else:
            return None  # the schema reported the shape
        if not self.ok or not found:
            return None
        mark = self.issues.positions.value(self.at)
        return PackageSet(
            installer=key,
            requirements=tuple(found),
            check=check,
            pip_version=pip_version,
            file=self.issues.file,
            line=mark.line,
            column=mark.column,
            path=format_path(self.at),
        )

    def _pip_version(self, spec: str) -> str | None:
        text = spec.strip()
        bad = pep508.problem(f"pip{text}")
        if bad:
            self.issues.at_value(
                (*self.at, "pip_version"),
                f"pip_version '{spec}' is not a version specifier such as '==23.2.1'",
            )
            self.ok = False
            return None
        return text

    def _from_list(self, entries: list[Any], at: DocPath) -> list[Requirement]:
        found: dict[str, Requirement] = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, str):
                continue  # the schema reported it
            path = (*at, i)
            text = entry.strip()
            try:
                parsed = pep508.parse(text)
            except pep508.RequirementError as exc:
                self.issues.at_value(path, f"'{text}' is not a valid requirement (PEP 508): {exc}")
                self.ok = False
                continue
            mark = self.issues.positions.value(path)
            found.setdefault(
                text,
                Requirement(
                    text, parsed.name, self.issues.file, mark.line, mark.column, format_path(path)
                ),
            )
        return list(found.values())

    def _from_file(self, rel: str, at: DocPath) -> list[Requirement]:
        path = self._requirements_path(rel, at)
        if path is None:
            return []
        data = (self.root / path).read_bytes()
        if len(data) > MAX_REQUIREMENTS_BYTES:
            self._bad(at, f"requirements file '{rel}' is larger than 1 MiB")
            return []
        found: dict[str, Requirement] = {}
        for number, text in _logical_lines(data.decode("utf-8", errors="replace")):
            try:
                parsed = pep508.parse(text)
            except pep508.RequirementError as exc:
                message = f"'{text}' is not a valid requirement (PEP 508): {exc}"
                self.issues.add(ConfigIssue(path, number, 1, "", message))
                self.ok = False
                continue
            found.setdefault(text, Requirement(text, parsed.name, path, number, 1, ""))
        return list(found.values())

    def _requirements_path(self, rel: str, at: DocPath) -> str | None:
        """A requirements file inside the repository, repository-relative (Ray reads it from
        the driver's directory; here the repository root is that directory)."""
        clean = posixpath.normpath(rel.replace("\\", "/"))
        if "://" in rel or clean.startswith(("/", "../")) or clean == "..":
            self._bad(at, f"requirements file '{rel}' must be a path inside the repository")
            return None
        real_root = os.path.realpath(self.root)
        real = os.path.realpath(os.path.join(real_root, clean))
        if not real.startswith(real_root + os.sep):
            self._bad(at, f"requirements file '{rel}' leaves the repository")
            return None
        if not os.path.isfile(real):
            self._bad(at, f"requirements file '{rel}' does not exist in the repository")
            return None
        return clean

    def _bad(self, at: DocPath, message: str) -> None:
        self.issues.at_value(at, message)
        self.ok = False


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, requirement) of a requirements file: comments and blank lines dropped,
    backslash continuations joined (numbered by their first line)."""
    result: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            result.append((start, joined))
    if pending.strip():
        result.append((start, pending.strip()))
    return result
