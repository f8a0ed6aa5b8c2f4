"""The invalid-config corpus (tests/spec/invalid/*.yaml), run through `reconciler validate`.

Each file starts with `# expect: EXIT LINE:COL "words" ...`: the exit code, and one issue at
that line and column whose message holds every quoted phrase."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main

HERE = Path(__file__).parent
INVALID = HERE / "invalid"
VALID = HERE / "valid"
EXAMPLES = HERE.parents[1] / "examples-repo"
CASES = sorted(INVALID.glob("*.yaml"))


def _expectation(path: Path) -> tuple[int, int, int, list[str]]:
    first = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert first.startswith("# expect: "), f"{path.name}: no '# expect:' header"
    code, where, *words = shlex.split(first.removeprefix("# expect: "))
    line, column = where.split(":")
    return int(code), int(line), int(column), words


def _validate(*argv: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["validate", "--format", "json", *argv])
    return code, json.loads(out.getvalue())


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_invalid_config(path: Path) -> None:
    code, line, column, words = _expectation(path)
    exit_code, report = _validate("--root", str(INVALID), str(path))
    assert exit_code == code
    issues = report["files"][0]["issues"]
    matching = [
        i
        for i in issues
        if (i["line"], i["column"]) == (line, column) and all(w in i["message"] for w in words)
    ]
    assert matching, f"no issue at {line}:{column} with {words}; got {issues}"


@pytest.mark.parametrize(
    "path",
    [
        EXAMPLES / "serve_config.yaml",
        EXAMPLES / "multi_app_config.yaml",
        *sorted(VALID.glob("*.yaml")),
    ],
    ids=lambda p: p.name,
)
def test_valid_config(path: Path) -> None:
    exit_code, report = _validate("--root", str(path.parent), str(path))
    assert report["files"][0]["issues"] == []
    assert exit_code == 0


@pytest.mark.parametrize("name", ["unknown_deployment_key", "alias_bomb"])
def test_invalid_config_in_a_subprocess(name: str) -> None:
    path = INVALID / f"{name}.yaml"
    code, line, column, words = _expectation(path)
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "--root", str(INVALID), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == code
    located = [row for row in result.stdout.splitlines() if f":{line}:{column}: " in row]
    assert located and all(w in located[0] for w in words), result.stdout


def test_valid_example_in_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "serve_config.yaml" in result.stdout and "multi_app_config.yaml" in result.stdout


def test_corpus_code_is_the_example_code() -> None:
    """The corpus directories are repository roots of their own, so each holds a copy of the
    example's fruit.py (a symlink out of the root would be refused): keep them identical."""
    example = (HERE.parents[1] / "examples-repo" / "fruit.py").read_text()
    assert (INVALID / "fruit.py").read_text() == example
    assert (VALID / "fruit.py").read_text() == example
