"""PEP 508 requirement strings, checked offline (what `reconciler validate` can say about a pip
list at pull-request time without asking an index): the name, extras, version specifiers (PEP
440 versions), a direct `name @ URL` and environment markers. A small recursive-descent reader of
the grammar in PEP 508; it says where a string goes wrong and why, and returns the project name
normalized as PEP 503 does, so two spellings of one project compare equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_OPERATORS = ("===", "~=", "==", "!=", "<=", ">=", "<", ">")
_VERSION_CHARS = re.compile(r"[A-Za-z0-9_.*+!-]+")
# PEP 440 public and local versions, case-insensitive; `.*` only where a prefix match is allowed.
_PEP440 = re.compile(
    r"v?(?:\d+!)?\d+(?:\.\d+)*"
    r"(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?\d*)?"
    r"(?:-\d+|[-_.]?(?:post|rev|r)[-_.]?\d*)?"
    r"(?:[-_.]?dev[-_.]?\d*)?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?",
    re.IGNORECASE,
)
_MARKER_VARS = frozenset(
    {
        "python_version",
        "python_full_version",
        "os_name",
        "sys_platform",
        "platform_release",
        "platform_system",
        "platform_version",
        "platform_machine",
        "platform_python_implementation",
        "implementation_name",
        "implementation_version",
        "extra",
        "os.name",  # the old PEP 345 spellings pip still takes
        "sys.platform",
        "platform.version",
        "platform.machine",
        "platform.python_implementation",
        "python_implementation",
    }
)


def normalize_name(name: str) -> str:
    """PEP 503: lowercase, runs of '-', '_' and '.' as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Parsed:
    name: str  # normalized
    url: str | None = None


class RequirementError(ValueError):
    """Why a string is not a PEP 508 requirement; `offset` is 0-based into the string."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def parse(text: str) -> Parsed:
    """The requirement's normalized name (and URL), or RequirementError."""
    reader = _Reader(text)
    result = reader.requirement()
    reader.skip()
    if not reader.done():
        raise RequirementError(f"unexpected {reader.rest()!r}", reader.pos)
    return result


def problem(text: str) -> str | None:
    """Plain words on what is wrong with a requirement string, or None when it is valid."""
    try:
        parse(text)
    except RequirementError as exc:
        return f"'{text}' is not a valid requirement (PEP 508): {exc}"
    return None


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def done(self) -> bool:
        return self.pos >= len(self.text)

    def rest(self) -> str:
        return self.text[self.pos : self.pos + 20]

    def skip(self) -> None:
        while not self.done() and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def fail(self, message: str) -> RequirementError:
        return RequirementError(message, self.pos)

    def requirement(self) -> Parsed:
        self.skip()
        if self.done():
            raise self.fail("it is empty")
        if self.peek("-"):
            raise self.fail(
                "pip options are not requirements; give index settings to the reconciler "
                "(--pip-index-url, --pip-find-links or PIP_* variables)"
            )
        match = _NAME.match(self.text, self.pos)
        if match is None:
            raise self.fail("a requirement starts with a project name (letters, digits, -_.)")
        name = normalize_name(match.group())
        self.pos = match.end()
        self.skip()
        if self.peek("["):
            self.extras()
            self.skip()
        if self.take("@"):
            url = self.url()
            self.marker_tail(after_url=True)
            return Parsed(name, url)
        if not self.done() and not self.peek(";"):
            self.version_spec()
            self.skip()
        self.marker_tail(after_url=False)
        return Parsed(name)

    def extras(self) -> None:
        self.take("[")
        self.skip()
        if self.take("]"):
            return
        while True:
            self.skip()
            match = _NAME.match(self.text, self.pos)
            if match is None:
                raise self.fail("an extra must be a name, e.g. requests[security]")
            self.pos = match.end()
            self.skip()
            if self.take("]"):
                return
            if not self.take(","):
                raise self.fail("extras are separated by ',' and closed by ']'")

    def url(self) -> str:
        self.skip()
        start = self.pos
        while not self.done() and self.text[self.pos] not in " \t":
            self.pos += 1
        url = self.text[start : self.pos]
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$|^file:\S+$", url):
            raise RequirementError("after '@' comes a URL (scheme://...)", start)
        return url

    def version_spec(self) -> None:
        closing = self.take("(")
        while True:
            self.skip()
            self.version_one()
            self.skip()
            if not self.take(","):
                break
        if closing:
            self.skip()
            if not self.take(")"):
                raise self.fail("')' expected after the version specifiers")

    def version_one(self) -> None:
        op = next((o for o in _OPERATORS if self.peek(o)), None)
        if op is None:
            raise self.fail(
                "a version specifier starts with ==, !=, <=, >=, <, >, ~= or === "
                "(e.g. numpy==1.26.4)"
            )
        self.pos += len(op)
        self.skip()
        match = _VERSION_CHARS.match(self.text, self.pos)
        if match is None:
            raise self.fail(f"a version is expected after '{op}'")
        version = match.group()
        if op != "===" and not _valid_version(op, version):
            raise self.fail(f"'{version}' is not a valid version (PEP 440)")
        self.pos = match.end()

    def marker_tail(self, *, after_url: bool) -> None:
        self.skip()
        if self.done():
            return
        if not self.take(";"):
            raise self.fail("expected ';' before an environment marker, or the end")
        if after_url and self.text[self.pos - 2 : self.pos - 1] not in (" ", "\t"):
            raise RequirementError("a URL is followed by ' ;' (a space before ';')", self.pos - 1)
        self.marker_or()

    def marker_or(self) -> None:
        self.marker_and()
        while self.keyword("or"):
            self.marker_and()

    def marker_and(self) -> None:
        self.marker_expr()
        while self.keyword("and"):
            self.marker_expr()

    def keyword(self, word: str) -> bool:
        self.skip()
        if re.match(rf"{word}\b", self.text[self.pos :]):
            self.pos += len(word)
            return True
        return False

    def marker_expr(self) -> None:
        self.skip()
        if self.take("("):
            self.marker_or()
            self.skip()
            if not self.take(")"):
                raise self.fail("')' expected in the marker")
            return
        self.marker_var()
        self.skip()
        if not (self.keyword("in") or (self.keyword("not") and self.keyword("in"))):
            op = next((o for o in _OPERATORS if self.peek(o)), None)
            if op is None:
                raise self.fail("a marker compares with ==, !=, <, >, <=, >=, ~=, in or not in")
            self.pos += len(op)
        self.marker_var()

    def marker_var(self) -> None:
        self.skip()
        if not self.done() and self.text[self.pos] in "'\"":
            quote = self.text[self.pos]
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                raise self.fail("an unclosed quote in the marker")
            self.pos = end + 1
            return
        match = re.compile(r"[a-z_.]+").match(self.text, self.pos)
        if match is None or match.group() not in _MARKER_VARS:
            raise self.fail(
                "a marker names python_version, sys_platform, platform_machine, ... "
                "or a quoted string"
            )
        self.pos = match.end()


def _valid_version(op: str, version: str) -> bool:
    if version.endswith(".*") and op in ("==", "!="):
        version = version[:-2]
    return _PEP440.fullmatch(version) is not None
