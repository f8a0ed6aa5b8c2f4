"""runtime_env pip / uv in the loader: the three forms Ray takes, each requirement located at
its config line (or requirements-file line), the merge, and what moves the version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.model import DeploymentSpec, canonical_json, short_hash
from reconciler.spec import load_config

EXAMPLES = Path(__file__).parents[2] / "examples-repo"

CONFIG = """\
import_path: fruit:deployment_graph
runtime_env:
{app_env}
deployments:
  - name: MangoStand
    ray_actor_options:
      num_cpus: 0.1
{mango_env}
"""


def _load(tmp_path: Path, app_env: str = "  {}", mango_env: str = "") -> dict[str, DeploymentSpec]:
    shutil.copy(EXAMPLES / "fruit.py", tmp_path / "fruit.py")
    (tmp_path / "serve_config.yaml").write_text(CONFIG.format(app_env=app_env, mango_env=mango_env))
    return {d.name: d for d in load_config(tmp_path, "serve_config.yaml").deployments()}


def test_a_list_locates_each_requirement_and_drops_duplicates(tmp_path: Path) -> None:
    specs = _load(
        tmp_path, "  pip:\n    - Requests>=2.31\n    - numpy==1.26.4\n    - numpy==1.26.4"
    )
    packages = specs["FruitMarket"].packages
    assert packages is not None and packages.installer == "pip"
    assert [(r.text, r.name, r.line, r.column) for r in packages.requirements] == [
        ("Requests>=2.31", "requests", 4, 7),
        ("numpy==1.26.4", "numpy", 5, 7),
    ]
    assert packages.requirements[0].path == "runtime_env.pip[0]"
    assert (packages.file, packages.line, packages.path) == (
        "serve_config.yaml",
        4,
        "runtime_env.pip",
    )


def test_the_mapping_form_and_uv(tmp_path: Path) -> None:
    specs = _load(
        tmp_path,
        "  pip:\n    packages: [httpx]\n    pip_check: true\n    pip_version: '==23.2.1'",
    )
    packages = specs["MangoStand"].packages
    assert packages is not None
    assert (packages.lines, packages.check, packages.pip_version) == (("httpx",), True, "==23.2.1")
    uv = _load(tmp_path, "  uv: {packages: [httpx], uv_check: true, uv_version: '0.4'}")
    packages = uv["MangoStand"].packages
    assert packages is not None and (packages.installer, packages.check) == ("uv", True)


def test_a_requirements_file_in_the_repository(tmp_path: Path) -> None:
    (tmp_path / "deps").mkdir()
    (tmp_path / "deps" / "requirements.txt").write_text(
        "# pinned\nrequests==2.32.3  # the HTTP client\n\nnumpy==1.\\\n26.4\n"
    )
    specs = _load(tmp_path, "  pip: deps/requirements.txt")
    packages = specs["PearStand"].packages
    assert packages is not None
    assert [(r.text, r.file, r.line) for r in packages.requirements] == [
        ("requests==2.32.3", "deps/requirements.txt", 2),
        ("numpy==1.26.4", "deps/requirements.txt", 4),
    ]
    (tmp_path / "deps" / "requirements.txt").write_text("ok==1\n-e .\n")
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "  pip: deps/requirements.txt")
    (issue,) = caught.value.issues
    assert (issue.file, issue.line) == ("deps/requirements.txt", 2)
    assert "pip options are not requirements" in issue.message


def test_a_requirements_file_outside_the_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, "  pip: ../requirements.txt")
    assert "must be a path inside the repository" in str(caught.value)


def test_a_deployment_list_replaces_the_applications(tmp_path: Path) -> None:
    specs = _load(
        tmp_path,
        "  pip: [requests==2.32.3]",
        "      runtime_env:\n        pip: [numpy==1.26.4]",
    )
    mango, market = specs["MangoStand"].packages, specs["FruitMarket"].packages
    assert mango is not None and market is not None
    assert mango.lines == ("numpy==1.26.4",) and market.lines == ("requests==2.32.3",)
    assert mango.requirements[0].path == "deployments[0].ray_actor_options.runtime_env.pip[0]"


def test_packages_move_the_version_and_nothing_else_does(tmp_path: Path) -> None:
    plain = _load(tmp_path)
    with_numpy = _load(tmp_path, "  pip: [numpy==1.26.4]")
    other_numpy = _load(tmp_path, "  pip: [numpy==2.0.0]")
    assert plain["MangoStand"].packages is None
    assert len({d["MangoStand"].version for d in (plain, with_numpy, other_numpy)}) == 3
    # Without packages the version is what it was before packages existed: upgrading the
    # reconciler restarts no replica.
    spec = plain["MangoStand"]
    before = short_hash(
        spec.import_path,
        spec.image or "",
        canonical_json(spec.env),
        canonical_json(
            [
                spec.resources.num_cpus,
                spec.resources.num_gpus,
                spec.resources.memory,
                spec.resources.custom,
            ]
        ),
        spec.code.digest if spec.code else "",
        spec.args,
    )
    assert spec.version == before


def test_an_empty_list_is_no_packages(tmp_path: Path) -> None:
    assert _load(tmp_path, "  pip: []")["MangoStand"].packages is None


def test_locations_do_not_count_in_the_version(tmp_path: Path) -> None:
    one = _load(tmp_path, "  pip: [numpy==1.26.4]")["MangoStand"]
    two = _load(tmp_path, "  env_vars: {}\n  pip:\n    - numpy==1.26.4")["MangoStand"]
    assert one.packages is not None and two.packages is not None
    assert one.packages.requirements[0].line != two.packages.requirements[0].line
    assert one.version == two.version
    assert json.dumps(one.packages.lines) == json.dumps(two.packages.lines)
