"""Where a problem is and how to say it: document paths, recorded YAML positions, and the
collector that turns (path, message) pairs into located `ConfigIssue`s."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from reconciler.errors import ERROR, ConfigIssue

DocPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in the config file."""

    line: int
    column: int


@dataclass
class Positions:
    """Where each value (and each mapping key) of the parsed document was written."""

    values: dict[DocPath, Mark] = field(default_factory=dict)
    keys: dict[DocPath, Mark] = field(default_factory=dict)

    def value(self, path: DocPath) -> Mark:
        """The value's mark, else the nearest enclosing node's (a missing key points at its
        parent mapping)."""
        for end in range(len(path), -1, -1):
            mark = self.values.get(path[:end])
            if mark is not None:
                return mark
        return Mark(1, 1)

    def key(self, path: DocPath) -> Mark:
        return self.keys.get(path) or self.value(path)


def format_path(path: Sequence[str | int]) -> str:
    """`("applications", 0, "name")` -> `applications[0].name`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a close match, else ""."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Issues:
    """Collects the issues of one config file: errors and warnings. One issue per document path
    and severity: the first wins, so a specific message found early is not buried under a generic
    one about the same value."""

    def __init__(self, file: str, positions: Positions) -> None:
        self.file = file
        self.positions = positions
        self._items: dict[tuple[str, ...], ConfigIssue] = {}
        self._warnings: dict[tuple[str, ...], ConfigIssue] = {}

    def at_value(self, path: DocPath, message: str, severity: str = ERROR) -> None:
        self._at(self.positions.value(path), path, message, severity)

    def at_key(self, path: DocPath, message: str, severity: str = ERROR) -> None:
        self._at(self.positions.key(path), path, message, severity)

    def _at(self, mark: Mark, path: DocPath, message: str, severity: str) -> None:
        where = format_path(path)
        self._add(ConfigIssue(self.file, mark.line, mark.column, where, message, severity))

    def add(self, issue: ConfigIssue) -> None:
        self._add(issue)

    def _add(self, issue: ConfigIssue) -> None:
        if issue.path:
            dedupe: tuple[str, ...] = (issue.file, issue.path)
        else:
            dedupe = (issue.file, str(issue.line), str(issue.column), issue.message)
        (self._warnings if issue.is_warning else self._items).setdefault(dedupe, issue)

    def has_under(self, path: DocPath) -> bool:
        """True when some error sits at `path` or below it in this file."""
        prefix = format_path(path)
        return any(
            i.file == self.file
            and (not prefix or i.path == prefix or i.path.startswith((prefix + ".", prefix + "[")))
            for i in self._items.values()
        )

    def __len__(self) -> int:
        """The number of errors (warnings do not count: they never refuse a config)."""
        return len(self._items)

    def all(self) -> list[ConfigIssue]:
        """The errors, sorted."""
        return sorted(self._items.values())

    def warnings(self) -> list[ConfigIssue]:
        """The warnings, sorted; none about a value that is an error already."""
        return sorted(w for w in self._warnings.values() if not (w.path and self._erroneous(w)))

    def _erroneous(self, warning: ConfigIssue) -> bool:
        prefix = warning.path
        return any(
            i.file == warning.file
            and (i.path == prefix or i.path.startswith((prefix + ".", prefix + "[")))
            for i in self._items.values()
        )
