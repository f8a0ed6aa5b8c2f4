"""The config corpus (tests/spec/invalid/*.yaml and tests/spec/valid/*.yaml), run through
`reconciler validate --no-sandbox`. Written from Ray Serve 2.60's field list and checks.

Each invalid file starts with `# expect: EXIT LINE:COL "words" ...`: the exit code, and one
error at that line and column whose message holds every quoted phrase (`FILE:LINE:COL` for an
issue in a code file rather than the config). Any file may list
`# warn: LINE:COL "words" ...` lines: in a valid file they are exactly its warnings (one line
per warning), in an invalid one warnings that must be among them. A file whose code only a
sandbox can decide says with `# sandbox: EXIT [LINE:COL "words"]` what validate answers when it
builds the code in one (tests/spec/test_spec_sandbox_docker.py runs those)."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main

HERE = Path(__file__).parent
INVALID = HERE / "invalid"
VALID = HERE / "valid"
EXAMPLES = HERE.parents[1] / "examples-repo"
CASES = sorted(INVALID.glob("*.yaml"))
VALID_CASES = sorted(VALID.glob("*.yaml"))


@dataclass(frozen=True)
class Located:
    """`[FILE:]LINE:COL "words"...`: FILE (a code file) when it is not the config."""

    line: int
    column: int
    words: tuple[str, ...]
    file: str = ""

    def matches(self, issue: dict[str, Any]) -> bool:
        at = (issue["line"], issue["column"]) == (self.line, self.column)
        here = issue["file"].endswith(self.file) if self.file else issue["file"].endswith(".yaml")
        return at and here and all(w in issue["message"] for w in self.words)


@dataclass
class Expectation:
    exit: int = 0
    error: Located | None = None
    warnings: list[Located] = field(default_factory=list)
    sandbox: tuple[int, Located | None] | None = None


def _located(text: str) -> Located:
    where, *words = shlex.split(text)
    *file, line, column = where.split(":")
    return Located(int(line), int(column), tuple(words), ":".join(file))


def expectation(path: Path) -> Expectation:
    found = Expectation()
    for raw in path.read_bytes().split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if not line.startswith("#"):
            break
        if line.startswith("# expect: "):
            code, *rest = line.removeprefix("# expect: ").split(" ", 1)
            found.exit, found.error = int(code), _located(rest[0]) if rest else None
        elif line.startswith("# warn: "):
            found.warnings.append(_located(line.removeprefix("# warn: ")))
        elif line.startswith("# sandbox: "):
            code, *rest = line.removeprefix("# sandbox: ").split(" ", 1)
            found.sandbox = (int(code), _located(rest[0]) if rest else None)
    return found


def validate(*argv: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["validate", "--format", "json", *argv])
    return code, json.loads(out.getvalue())


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 80 and len(VALID_CASES) >= 12


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_invalid_config(path: Path) -> None:
    wanted = expectation(path)
    assert wanted.error is not None, f"{path.name}: no '# expect:' header"
    exit_code, report = validate("--no-sandbox", "--root", str(INVALID), str(path))
    assert exit_code == wanted.exit
    issues = report["files"][0]["issues"]
    assert any(wanted.error.matches(i) for i in issues), f"no {wanted.error}; got {issues}"
    warnings = report["files"][0]["warnings"]
    for w in wanted.warnings:
        assert any(w.matches(i) for i in warnings), f"no warning {w}; got {warnings}"


@pytest.mark.parametrize(
    "path",
    [EXAMPLES / "serve_config.yaml", EXAMPLES / "multi_app_config.yaml", *VALID_CASES],
    ids=lambda p: p.name,
)
def test_valid_config(path: Path) -> None:
    wanted = expectation(path)
    exit_code, report = validate("--no-sandbox", "--root", str(path.parent), str(path))
    assert report["files"][0]["issues"] == []
    assert exit_code == 0
    warnings = report["files"][0]["warnings"]
    unmatched = [w for w in warnings if not any(e.matches(w) for e in wanted.warnings)]
    missing = [e for e in wanted.warnings if not any(e.matches(w) for w in warnings)]
    assert (unmatched, missing) == ([], []), "warnings differ from the '# warn:' lines"
    assert len(warnings) == len(wanted.warnings)
    assert all(w["severity"] == "warning" for w in warnings)


@pytest.mark.parametrize("name", ["unknown_deployment_key", "alias_bomb"])
def test_invalid_config_in_a_subprocess(name: str) -> None:
    path = INVALID / f"{name}.yaml"
    wanted = expectation(path)
    assert wanted.error is not None
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "--root", str(INVALID), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == wanted.exit
    at = f":{wanted.error.line}:{wanted.error.column}: "
    located = [row for row in result.stdout.splitlines() if at in row]
    assert located and all(w in located[0] for w in wanted.error.words), result.stdout


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
