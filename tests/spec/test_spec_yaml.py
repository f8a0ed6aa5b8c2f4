"""Unit tests of the safe YAML reader: positions, and refusal of hostile input."""

from __future__ import annotations

import json

import pytest

from reconciler.spec import yamlsafe
from reconciler.spec.issues import Mark


def test_positions_of_keys_and_values() -> None:
    parsed = yamlsafe.parse(b"a: 1\nb:\n  - c: [1, 2]\n")
    assert parsed.document == {"a": 1, "b": [{"c": [1, 2]}]}
    assert parsed.positions.values[("a",)] == Mark(1, 4)
    assert parsed.positions.keys[("b", 0, "c")] == Mark(3, 5)
    assert parsed.positions.values[("b", 0, "c", 1)] == Mark(3, 12)
    assert parsed.positions.value(("b", 0, "missing")) == Mark(3, 5)


def test_duplicate_key_names_both_lines() -> None:
    parsed = yamlsafe.parse(b"a: 1\nb: 2\na: 3\n")
    assert parsed.document == {"a": 1, "b": 2}
    ((path, at_key, message),) = parsed.problems
    assert path == ("a",) and at_key and "line 3" in message and "first at line 1" in message
    assert parsed.positions.keys[("a",)] == Mark(3, 1)


def test_merge_keys_and_anchors() -> None:
    parsed = yamlsafe.parse(b"base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n")
    assert parsed.document["d"] == {"x": 1, "y": 3}
    assert parsed.problems == []


@pytest.mark.parametrize(
    ("data", "words", "line"),
    [
        (b"", "empty", 0),
        (b"# only a comment\n", "empty", 0),
        (b"a: 1\n---\nb: 2\n", "more than one YAML document", 2),
        (b"a:\n\tb: 1\n", "tab character", 2),
        (b"ok: 1\nbad: \xc3\x28\n", "not valid UTF-8", 2),
        (b"a: &a [1, *a]\n", "cycle", 1),
        (b"a: " + b"[" * 60 + b"]" * 60 + b"\n", "nested deeper than 50", 1),
        (b"x: &x 1\ny: [" + b", ".join([b"*x"] * 101) + b"]\n", "more than 100 YAML aliases", 2),
        (b"a: [1\n", "YAML syntax error", 2),
    ],
)
def test_refused(data: bytes, words: str, line: int) -> None:
    with pytest.raises(yamlsafe.YamlRefused) as caught:
        yamlsafe.parse(data)
    assert words in caught.value.message
    assert caught.value.mark.line == line


def test_alias_expansion_budget() -> None:
    doc = b'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
    for name, ref in zip("bcdefgh", "abcdefg", strict=True):
        doc += f"{name}: &{name} [".encode() + b",".join([f"*{ref}".encode()] * 10) + b"]\n"
    with pytest.raises(yamlsafe.YamlRefused) as caught:
        yamlsafe.parse(doc)
    assert "expands to more than 100000 values" in caught.value.message


def test_size_cap() -> None:
    with pytest.raises(yamlsafe.YamlRefused) as caught:
        yamlsafe.parse(b"a: 1\n" + b" " * yamlsafe.MAX_BYTES)
    assert "at most 1 MiB" in caught.value.message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"d: 2024-01-31", "as a date"),
        (b"n: .inf", "NaN or infinity"),
        (b"b: !!binary aGk=", "binary"),
        (b"s: !!set {a}", "sets"),
        (b"yes: 1", "as a boolean"),
        (b"t: !custom 1", "cannot read the value"),
    ],
)
def test_values_json_cannot_carry_are_problems(line: bytes, words: str) -> None:
    parsed = yamlsafe.parse(line + b"\n")
    assert any(words in message for _, _, message in parsed.problems)
    json.dumps(parsed.document, allow_nan=False)  # what is kept is plain JSON
