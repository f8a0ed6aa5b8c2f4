"""Parse a config file's bytes into plain JSON-like values, recording where each value was
written, and refuse hostile input cleanly: oversized files, non-UTF-8 bytes, alias bombs, deep
nesting, duplicate keys, several documents, and YAML types JSON cannot carry."""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.spec.issues import DocPath, Mark, Positions

MAX_BYTES = 1 << 20
MAX_DEPTH = 50
MAX_ALIASES = 100
MAX_NODES = 100_000

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"
_KIND = {
    "int": "a number",
    "float": "a number",
    "bool": "a boolean (yes/no/on/off are booleans)",
    "NoneType": "null",
}


class YamlRefused(Exception):
    """The file cannot be read as a config at all; `mark` says where (line 0: the whole file)."""

    def __init__(self, message: str, mark: Mark | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark or Mark(0, 0)


@dataclass
class Parsed:
    """The document plus where things are, and the non-fatal problems found while reading."""

    document: Any
    positions: Positions
    problems: list[tuple[DocPath, bool, str]] = field(default_factory=list)  # (path, at_key, msg)


def _mark(node: Node | yaml.Mark | None) -> Mark:
    if node is None:
        return Mark(0, 0)
    m = node.start_mark if isinstance(node, Node) else node
    return Mark(m.line + 1, m.column + 1)


class _Loader(yaml.SafeLoader):
    """Composes nodes only; caps nesting depth and the number of aliases while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def _event_mark(self) -> yaml.Mark:
        return self.peek_event().start_mark  # type: ignore[no-untyped-call,no-any-return]

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self._event_mark()
                raise YamlRefused(
                    f"more than {MAX_ALIASES} YAML aliases (*name); refusing a possible alias bomb",
                    _mark(mark),
                )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise YamlRefused(
                    f"the document is nested deeper than {MAX_DEPTH} levels",
                    _mark(self._event_mark()),
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def decode(data: bytes) -> str:
    """UTF-8 text of the file, or YamlRefused saying where the first bad byte is."""
    if len(data) > MAX_BYTES:
        raise YamlRefused(f"the file is {len(data)} bytes; a config may be at most 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlRefused(
            f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save it as UTF-8",
            Mark(line, column),
        ) from None
    return text.removeprefix("\ufeff")


def _syntax_message(exc: yaml.YAMLError, text: str) -> YamlRefused:
    mark = getattr(exc, "problem_mark", None)
    where = _mark(mark)
    problem = getattr(exc, "problem", None) or str(exc)
    lines = text.splitlines()
    if (
        mark is not None
        and 0 < where.line <= len(lines)
        and "\t" in lines[where.line - 1][: where.column]
    ):
        return YamlRefused(
            "a tab character is used for indentation; YAML indents with spaces only", where
        )
    if "expected a single document" in str(exc):
        return YamlRefused(
            "the file holds more than one YAML document ('---'); a config is one document", where
        )
    context = getattr(exc, "context", None)
    extra = f" ({context})" if context else ""
    return YamlRefused(f"YAML syntax error: {problem}{extra}", where)


def _reader_message(exc: yaml.reader.ReaderError, text: str) -> YamlRefused:
    before = text[: exc.position]
    mark = Mark(before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return YamlRefused(
        f"the file holds the control character U+{code:04X}, which YAML does not allow; remove it",
        mark,
    )


def parse(data: bytes) -> Parsed:
    """Bytes -> Parsed, or YamlRefused when nothing sensible can be read."""
    text = decode(data)
    try:
        loader = _Loader(text)  # the reader checks for forbidden characters right here
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        raise _reader_message(exc, text) from None
    except yaml.YAMLError as exc:
        raise _syntax_message(exc, text) from None
    except RecursionError:
        raise YamlRefused(f"the document is nested deeper than {MAX_DEPTH} levels") from None
    if node is None:
        raise YamlRefused("the file is empty; a config needs at least import_path or applications")
    return _Builder().build(node)


class _Builder:
    """Turns the node graph into plain values, expanding aliases under a node budget."""

    def __init__(self) -> None:
        self.parsed = Parsed(None, Positions())
        self.nodes = 0
        self.constructor = SafeConstructor()

    def build(self, node: Node) -> Parsed:
        self.parsed.document = self._value(node, (), set())
        return self.parsed

    def _problem(self, path: DocPath, message: str, at_key: bool = False) -> None:
        self.parsed.problems.append((path, at_key, message))

    def _value(self, node: Node, path: DocPath, stack: set[int]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlRefused(
                f"the document expands to more than {MAX_NODES} values through "
                "aliases; refusing a possible alias bomb",
                _mark(node),
            )
        if id(node) in stack:
            raise YamlRefused(
                "a YAML alias refers to a node that contains it (a cycle)", _mark(node)
            )
        if len(path) > MAX_DEPTH:
            raise YamlRefused(f"the document is nested deeper than {MAX_DEPTH} levels", _mark(node))
        self.parsed.positions.values[path] = _mark(node)
        if isinstance(node, MappingNode):
            return self._mapping(node, path, stack | {id(node)})
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self._problem(path, f"unsupported YAML tag {node.tag}; write a plain list")
            return [
                self._value(item, (*path, i), stack | {id(node)})
                for i, item in enumerate(node.value)
            ]
        return self._scalar(node, path)

    def _scalar(self, node: Node, path: DocPath) -> Any:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            self._problem(
                path,
                f"cannot read the value {node.value!r} (tag {node.tag}); quote it "
                "if it is a string",
            )
            return str(node.value)
        return self._jsonable(value, node, path)

    def _jsonable(self, value: Any, node: Node, path: DocPath) -> Any:
        if isinstance(value, datetime.date | datetime.datetime):
            self._problem(
                path,
                f"YAML reads {node.value!r} as a date, which JSON cannot carry; "
                "quote it if you mean a string",
            )
            return str(node.value)
        if isinstance(value, bytes):
            self._problem(path, "binary (!!binary) values cannot be carried by JSON; use a string")
            return str(node.value)
        if isinstance(value, float) and not math.isfinite(value):
            self._problem(path, f"{node.value!r} (NaN or infinity) cannot be carried by JSON")
            return str(node.value)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        self._problem(path, f"unsupported YAML value of tag {node.tag}")
        return str(node.value)

    def _mapping(self, node: MappingNode, path: DocPath, stack: set[int]) -> dict[str, Any]:
        if node.tag != _MAP:
            what = "sets (!!set)" if node.tag.endswith(":set") else f"tag {node.tag}"
            self._problem(path, f"YAML {what} cannot be carried by JSON; write a plain mapping")
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            if key in result:
                self.parsed.positions.keys.setdefault(child, _mark(key_node))
                self._problem(
                    child,
                    f"duplicate key '{key}' at line {_mark(key_node).line} "
                    f"(first at line {first_line[key]}); a key may appear once",
                    at_key=True,
                )
                # the duplicate's own position is what the user must look at
                self.parsed.positions.keys[child] = _mark(key_node)
                continue
            first_line[key] = _mark(key_node).line
            self.parsed.positions.keys[child] = _mark(key_node)
            result[key] = self._value(value_node, child, stack)
        for key_node, value_node in self._merged(node, path, stack):
            key = self._key(key_node, path)
            if key is not None and key not in result:
                self.parsed.positions.keys[(*path, key)] = _mark(key_node)
                result[key] = self._value(value_node, (*path, key), stack)
        return result

    def _merged(
        self, node: MappingNode, path: DocPath, stack: set[int]
    ) -> Iterator[tuple[Node, Node]]:
        """The pairs brought in by `<<: *anchor` keys, in YAML's precedence order."""
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode) or id(source) in stack:
                    self._problem(path, "a merge key (<<) must refer to a mapping", at_key=True)
                    continue
                self.nodes += len(source.value)
                yield from ((k, v) for k, v in source.value if k.tag != _MERGE)
                yield from self._merged(source, path, stack | {id(source)})

    def _key(self, key_node: Node, path: DocPath) -> str | None:
        if not isinstance(key_node, ScalarNode):
            self._problem(path, "a mapping key must be a plain string, not a list or mapping")
            return None
        try:
            key = self.constructor.construct_object(key_node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            key = key_node.value
        if not isinstance(key, str):
            text = str(key_node.value)
            self.parsed.positions.keys[(*path, text)] = _mark(key_node)
            kind = _KIND.get(type(key).__name__, type(key).__name__)
            self._problem(
                (*path, text),
                f"YAML reads the key {text!r} as {kind}, but keys must be strings; quote it",
                at_key=True,
            )
            return text
        return key
