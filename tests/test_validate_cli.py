"""The `validate` and `build` commands end to end: exit codes, the three output formats,
repository checkouts, and a built config that validates."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples-repo"
INVALID = ROOT / "tests" / "spec" / "invalid"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    shutil.copytree(EXAMPLES, target)
    return target


def test_valid_checkout_text(repo: Path) -> None:
    code, out, _ = _run("validate", str(repo))
    assert code == 0
    assert out.strip().startswith("valid: ") and "serve_config.yaml" in out


def test_invalid_file_text_lines(repo: Path) -> None:
    config = repo / "serve_config.yaml"
    config.write_text(config.read_text().replace("num_replicas: 2", "num_replica: 2"))
    code, out, _ = _run("validate", str(config))
    lines = out.strip().splitlines()
    assert code == 1
    assert lines[0] == (
        f"{config}:31:5: unknown key 'num_replica' (did you mean "
        "'num_replicas'?) (deployments[3].num_replica)"
    )
    assert lines[-1] == "invalid: 1 problem in 1 of 1 file"


def test_github_annotations(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = repo / "serve_config.yaml"
    config.write_text(config.read_text().replace("port: 8000", "port: 80000"))
    monkeypatch.chdir(repo)  # as in CI: the checkout is the working directory
    code, out, _ = _run("validate", "--format", "github")
    assert code == 1
    assert (
        "::error file=serve_config.yaml,line=9,col=7::port must be at most 65535 (got 80000) (port)"
    ) in out.splitlines()


def test_github_escapes_newlines_and_commas() -> None:
    from reconciler.cli.validate_cmd import _github
    from reconciler.errors import ConfigIssue

    line = _github(ConfigIssue("a,b.yaml", 3, 4, "", "first\nsecond 100%"))
    assert line == "::error file=a%2Cb.yaml,line=3,col=4::first%0Asecond 100%25"


def test_json_report_lists_every_issue(repo: Path) -> None:
    config = repo / "serve_config.yaml"
    config.write_text(
        config.read_text()
        .replace("port: 8000", "port: 0")
        .replace("name: PearStand", "name: PearStnd")
    )
    code, out, _ = _run("validate", "--format", "json", str(repo), "--config", "serve_config.yaml")
    report = json.loads(out)
    assert code == 1 and report["valid"] is False
    (entry,) = report["files"]
    found = {(i["path"], i["line"]) for i in entry["issues"]}
    assert found == {("port", 9), ("deployments[2].name", 24)}


def test_code_issue_points_into_the_code(repo: Path) -> None:
    source = repo / "fruit.py"
    source.write_text(source.read_text().replace("num_replicas=2", "num_replicas=-2"))
    (repo / "serve_config.yaml").write_text("import_path: fruit:deployment_graph\n")
    code, out, _ = _run("validate", "--config", "serve_config.yaml", str(repo))
    assert code == 1
    assert "fruit.py:53:0: @serve.deployment options of FruitMarket: num_replicas" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "no/such/file.yaml"],
        ["validate", "--format", "xml", "."],
        ["validate", str(ROOT / "reconciler")],  # a directory without any Serve config
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    code, _, err = _run(*argv)
    assert code == 2 and err


def test_exit_codes_through_the_console_script() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(EXAMPLES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "validate",
            "--root",
            str(INVALID),
            str(INVALID / "port_out_of_range.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    missing = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "nope.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (ok.returncode, bad.returncode, missing.returncode) == (0, 1, 2)


@pytest.mark.parametrize("multi", [False, True])
def test_build_writes_a_config_that_validates(repo: Path, multi: bool) -> None:
    (repo / "serve_config.yaml").unlink()
    (repo / "multi_app_config.yaml").unlink()
    target = repo / "serve_config.yaml"
    argv = ["build", "fruit:deployment_graph", "--app-dir", str(repo), "-o", str(target)]
    code, _, err = _run(*argv, *(["--multi-app"] if multi else []))
    assert code == 0, err
    from reconciler.spec import load_config

    config = load_config(repo)
    assert config.shape == ("multi" if multi else "single")
    by_name = {d.name: d for d in config.deployments()}
    assert by_name["FruitMarket"].num_replicas == 2
    assert by_name["OrangeStand"].user_config == {"price": 2}
    entry = config.document["applications"][0] if multi else config.document
    written = {d["name"]: d for d in entry["deployments"]}
    assert written["MangoStand"]["health_check_timeout_s"] == 30.0
    assert written["MangoStand"]["max_ongoing_requests"] == 5


def test_build_to_stdout_and_errors(repo: Path) -> None:
    code, out, _ = _run("build", "fruit:deployment_graph", "--app-dir", str(repo))
    assert code == 0 and out.startswith("# Written by `reconciler build")
    code, _, err = _run("build", "fruit:no_graph", "--app-dir", str(repo))
    assert code == 1 and "defines no 'no_graph'" in err
    code, _, err = _run("build", "fruit:deployment_graph", "--app-dir", str(repo / "nope"))
    assert code == 2


def _legacy(repo: Path) -> Path:
    config = repo / "serve_config.yaml"
    text = config.read_text().replace(
        "num_replicas: 2", "num_replicas: 2\n    max_concurrent_queries: 9"
    )
    config.write_text(text)
    return config


def test_warnings_do_not_fail_the_check(repo: Path) -> None:
    config = _legacy(repo)
    code, out, _ = _run("validate", str(config))
    lines = out.strip().splitlines()
    assert code == 0
    assert lines[0].startswith(f"{config}:32:5: warning: Ray 2.60 ignores max_concurrent_queries")
    assert lines[-1] == f"valid: {config} (1 warning)"


def test_warnings_are_github_warning_annotations(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _legacy(repo)
    (repo / "serve_config.yaml").write_text(
        (repo / "serve_config.yaml").read_text().replace("port: 8000", "port: 80000")
    )
    monkeypatch.chdir(repo)
    code, out, _ = _run("validate", "--format", "github", "--config", "serve_config.yaml", ".")
    assert code == 1
    rows = out.splitlines()
    assert any(r.startswith("::error file=serve_config.yaml,line=9,col=7::port must") for r in rows)
    assert any(
        r.startswith("::warning file=serve_config.yaml,line=32,col=5::Ray 2.60 ignores")
        for r in rows
    )
    assert rows[-1] == "invalid: 1 problem in 1 of 1 file (1 warning)"


def test_json_keeps_warnings_apart_from_issues(repo: Path) -> None:
    _legacy(repo)
    code, out, _ = _run("validate", "--format", "json", str(repo), "--config", "serve_config.yaml")
    report = json.loads(out)
    assert code == 0 and report["valid"] is True
    (entry,) = report["files"]
    assert entry["valid"] is True and entry["issues"] == []
    (warning,) = entry["warnings"]
    assert (warning["line"], warning["column"], warning["severity"]) == (32, 5, "warning")
    assert warning["path"] == "deployments[3].max_concurrent_queries"


BUILDER = """
from ray import serve

@serve.deployment
class Hello:
    def __call__(self, request):
        return "hello"

def build(args):
    return Hello.bind()
"""


def test_code_only_a_sandbox_can_decide_is_a_warning_without_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hello.py").write_text(BUILDER)
    config = tmp_path / "serve_config.yaml"
    config.write_text("import_path: hello:build\n")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    code, out, _ = _run("validate", "--root", str(tmp_path), str(config))
    assert code == 0, out
    assert f"{config}:1:14: warning: cannot decide without running the code" in out
    assert "no sandbox could run" in out and "not reachable" in out
    code, out, _ = _run("validate", "--no-sandbox", "--root", str(tmp_path), str(config))
    assert code == 0 and "(--no-sandbox)" in out
