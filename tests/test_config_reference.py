"""The README's config reference is what scripts/gen-config-reference makes from the schema's
descriptions: the two cannot drift apart, and every property of the schema is in it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "scripts" / "gen-config-reference"
SCHEMA = ROOT / "schemas" / "serve-config.schema.json"
README = ROOT / "README.md"


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=60
    )


def test_readme_section_is_what_the_generator_makes() -> None:
    result = generate("--check", str(README))
    assert result.returncode == 0, (
        result.stderr + "\nrun: scripts/gen-config-reference --write README.md"
    )
    begin, end = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"
    text = README.read_text(encoding="utf-8")
    section = text[text.index(begin) + len(begin) : text.index(end)].strip()
    assert section == generate().stdout.strip()


def test_a_stale_section_fails_the_check(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    text = README.read_text(encoding="utf-8")
    stale.write_text(text.replace("| `num_replicas` |", "| `num_replicas_old` |", 1))
    result = generate("--check", str(stale))
    assert result.returncode == 1
    assert "out of date" in result.stderr and "--write" in result.stderr
    assert generate("--write", str(stale)).returncode == 0
    assert stale.read_text(encoding="utf-8") == text


def test_missing_markers_are_an_error(tmp_path: Path) -> None:
    bare = tmp_path / "README.md"
    bare.write_text("# nothing here\n")
    result = generate("--check", str(bare))
    assert result.returncode == 2 and "markers" in result.stderr


def _properties(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for key, prop in (node.get("properties") or {}).items():
            yield f"{path}.{key}", prop
        for key, value in node.items():
            if key != "properties":
                yield from _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _properties(item, path)


def test_every_schema_property_is_described_and_in_the_reference() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    reference = generate().stdout
    cells = reference.replace("\\|", "|")
    defs = schema["$defs"]
    for where, prop in _properties(schema):
        text = prop.get("description")
        if text is None and "$ref" in prop:
            text = defs[prop["$ref"].rsplit("/", 1)[-1]].get("description")
        assert text, f"{where}: no description in the schema"
        name = where.rsplit(".", 1)[-1]
        if "/envValue/" in where:
            continue  # the env value forms are described as one rule, not as tables
        assert f"`{name}`" in reference, f"{where} is missing from the reference"
        assert text.replace("\n", " ").strip() in cells, f"{where}: description not shown"
