"""`reconciler diff BASE [HEAD]` on a real git repository: what merging HEAD would do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from tests.support import EXAMPLES, git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    shutil.copytree(EXAMPLES, work, ignore=shutil.ignore_patterns(".git"))
    git(work, "init", "-q", "-b", "main")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "fruit")
    return work


def _commit(repo: Path, path: str, old: str, new: str) -> None:
    file = repo / path
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new, 1))
    git(repo, "commit", "-q", "-am", f"edit {path}")


def _diff(repo: Path, capsys: Any, *args: str) -> tuple[int, list[dict[str, Any]]]:
    code = main(["diff", "-C", str(repo), "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def _by_name(changes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["deployment"]: c for c in changes}


def test_no_change_exits_0(repo: Path, capsys: Any) -> None:
    code, changes = _diff(repo, capsys, "HEAD", "HEAD")
    assert code == 0 and changes == []


def test_scale_is_reported_with_counts(repo: Path, capsys: Any) -> None:
    _commit(repo, "serve_config.yaml", "num_replicas: 2", "num_replicas: 4")
    code, changes = _diff(repo, capsys, "HEAD~1")
    assert code == 1
    assert _by_name(changes)["FruitMarket"] | {"reasons": []} == {
        "application": "default",
        "deployment": "FruitMarket",
        "change": "scale",
        "from_replicas": 2,
        "to_replicas": 4,
        "reasons": [],
    }
    assert set(_by_name(changes)) == {"FruitMarket"}


def test_user_config_is_an_in_place_reconfigure(repo: Path, capsys: Any) -> None:
    _commit(repo, "serve_config.yaml", "price: 3", "price: 5")
    code, changes = _diff(repo, capsys, "HEAD~1", "HEAD")
    assert code == 1
    mango = _by_name(changes)["MangoStand"]
    assert mango["change"] == "reconfigure"
    assert any("user_config" in r for r in mango["reasons"])
    assert set(_by_name(changes)) == {"MangoStand"}


def test_code_change_restarts_and_names_the_file(repo: Path, capsys: Any) -> None:
    _commit(repo, "fruit.py", "DEFAULT_PRICE = 1\n", "DEFAULT_PRICE = 2\n")
    code, changes = _diff(repo, capsys, "HEAD~1")
    assert code == 1
    kinds = {c["deployment"]: c["change"] for c in changes}
    assert set(kinds.values()) == {"restart"}
    assert any("fruit.py" in r for r in _by_name(changes)["MangoStand"]["reasons"])


def test_added_and_removed_deployments(repo: Path, capsys: Any) -> None:
    code_file = repo / "fruit.py"
    code_file.write_text(
        code_file.read_text()
        + "\n\n@serve.deployment\nclass KiwiStand:\n    def check_price(self, amount):\n"
        "        return amount\n"
        + "\n\ndeployment_graph = FruitMarket.bind(MangoStand.bind(), OrangeStand.bind(),"
        " KiwiStand.bind())\n"
    )
    config = repo / "serve_config.yaml"
    config.write_text(
        config.read_text().replace(
            "  - name: PearStand\n    user_config:\n      price: 4\n", "  - name: KiwiStand\n"
        )
    )
    git(repo, "commit", "-q", "-am", "kiwi replaces pear")
    code, changes = _diff(repo, capsys, "HEAD~1")
    assert code == 1
    kinds = {c["deployment"]: c["change"] for c in changes}
    assert kinds["KiwiStand"] == "create"
    assert kinds["PearStand"] == "remove"


def test_text_output_and_invalid_head(repo: Path, capsys: Any) -> None:
    _commit(repo, "serve_config.yaml", "num_replicas: 2", "num_replicas: 3")
    assert main(["diff", "-C", str(repo), "HEAD~1"]) == 1
    out = capsys.readouterr().out
    assert "FruitMarket: scale 2 -> 3" in out
    _commit(repo, "serve_config.yaml", "num_replicas: 3", "num_replicas: -3")
    assert main(["diff", "-C", str(repo), "HEAD~1"]) == 2
    err = capsys.readouterr().err
    assert "serve_config.yaml:" in err and "num_replicas" in err


def test_unknown_revision_is_a_usage_error(repo: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "diff", "-C", str(repo), "no-such-branch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no-such-branch" in result.stderr
