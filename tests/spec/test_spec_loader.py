"""Unit tests of the loader: resolution of every field, versioning, env vars and secrets,
code-tree rules (symlinks, caps), and speed."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.model import DeploymentSpec
from reconciler.spec import codetree, load_config, redacted_document, validate_file
from reconciler.spec.discover import find_config_files

HERE = Path(__file__).parent
EXAMPLES = HERE.parents[1] / "examples-repo"
VALID = HERE / "valid"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A writable copy of the fruit example."""
    shutil.copy(EXAMPLES / "fruit.py", tmp_path / "fruit.py")
    shutil.copy(EXAMPLES / "serve_config.yaml", tmp_path / "serve_config.yaml")
    return tmp_path


def _deployment(root: Path, name: str, config: str = "serve_config.yaml") -> DeploymentSpec:
    spec = next(d for d in load_config(root, config).deployments() if d.name == name)
    return spec


def _issues(root: Path, config: str = "serve_config.yaml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(root, config)
    return [f"{i.line}:{i.column} {i.message}" for i in caught.value.issues]


def test_single_app_fruit_resolves_every_field() -> None:
    config = load_config(EXAMPLES)
    assert config.shape == "single" and config.source_file == "serve_config.yaml"
    assert (config.http.host, config.http.port) == ("127.0.0.1", 8000)
    (app,) = config.applications
    assert (app.name, app.route_prefix, app.ingress) == ("default", "/", "FruitMarket")
    assert [d.name for d in app.deployments] == [
        "FruitMarket",
        "MangoStand",
        "OrangeStand",
        "PearStand",
    ]
    market, mango = app.deployments[0], app.deployments[1]
    assert (market.num_replicas, market.is_ingress, market.route_prefix) == (2, True, "/")
    assert (mango.num_replicas, mango.is_ingress, mango.route_prefix) == (1, False, None)
    assert mango.user_config == {"price": 3}
    assert mango.resources.num_cpus == 0.1 and mango.max_ongoing_requests == 5
    assert (
        mango.graceful_shutdown_wait_loop_s,
        mango.graceful_shutdown_timeout_s,
        mango.health_check_period_s,
        mango.health_check_timeout_s,
    ) == (2.0, 20.0, 10.0, 30.0)
    assert mango.code is not None and mango.code.root == str(EXAMPLES.resolve())
    assert mango.code.dirs == (".",)
    assert [path for path, _ in mango.code.files] == ["README.md", "fruit.py"]
    assert config.document["deployments"][0]["name"] == "MangoStand"


def test_multi_app_fruit_resolves_to_the_same_deployments() -> None:
    single = load_config(EXAMPLES)
    multi = load_config(EXAMPLES, "multi_app_config.yaml")
    assert multi.shape == "multi"
    (app,) = multi.applications
    assert (app.name, app.route_prefix) == ("fruit", "/fruit")
    assert app.deployments[0].route_prefix == "/fruit"
    pairs = zip(single.deployments(), multi.deployments(), strict=True)
    for one, other in pairs:
        assert one.version == other.version
        assert dataclasses.replace(one, app="fruit", route_prefix=other.route_prefix) == other


def test_code_options_apply_when_the_config_is_silent(repo: Path) -> None:
    (repo / "serve_config.yaml").write_text("import_path: fruit:deployment_graph\n")
    config = load_config(repo)
    by_name = {d.name: d for d in config.deployments()}
    assert by_name["FruitMarket"].num_replicas == 2
    assert by_name["PearStand"].user_config == {"price": 4}
    assert by_name["PearStand"].resources.num_cpus == 1.0
    assert (config.http.host, config.http.port) == ("0.0.0.0", 8000)


def test_ray_actor_options_replace_the_code_value_as_a_whole(repo: Path) -> None:
    source = (
        (repo / "fruit.py")
        .read_text()
        .replace(
            "@serve.deployment(num_replicas=2)",
            '@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 2, "num_gpus": 1})',
        )
    )
    (repo / "fruit.py").write_text(source)
    (repo / "serve_config.yaml").write_text("import_path: fruit:deployment_graph\n")
    assert _deployment(repo, "FruitMarket").resources.num_gpus == 1.0
    (repo / "serve_config.yaml").write_text(
        "import_path: fruit:deployment_graph\ndeployments:\n  - name: FruitMarket\n"
        "    ray_actor_options: {memory: 1000}\n"
    )
    market = _deployment(repo, "FruitMarket")
    assert (market.resources.num_cpus, market.resources.num_gpus, market.resources.memory) == (
        1.0,
        0.0,
        1000,
    )


def test_autoscaling_and_env_resolution() -> None:
    config = load_config(VALID, "extensions_and_anchors.yaml")
    by_name = {d.name: d for d in config.deployments()}
    orange, pear = by_name["OrangeStand"], by_name["PearStand"]
    assert orange.autoscaling_config is not None
    assert (
        orange.autoscaling_config.min_replicas,
        orange.autoscaling_config.max_replicas,
        orange.autoscaling_config.target_ongoing_requests,
    ) == (1, 4, 2.0)
    assert orange.num_replicas == 1
    assert pear.num_replicas == 2 and pear.autoscaling_config is not None
    assert by_name["FruitMarket"].num_replicas == 2  # null in the config: the code's 2
    assert by_name["FruitMarket"].max_ongoing_requests == 10
    assert dict(orange.env)["REGION"] == "us" and dict(pear.env)["REGION"] == "eu"
    assert dict(pear.env)["API_TOKEN"] == "s3cret"
    assert dict(pear.env)["DB_PASSWORD"] == ""  # validate mode: not looked up
    assert pear.secret_env == {"API_TOKEN", "DB_PASSWORD"}
    assert [name for name, _ in pear.env] == sorted(name for name, _ in pear.env)


def test_from_env_reads_the_reconciler_environment() -> None:
    config = load_config(
        VALID, "extensions_and_anchors.yaml", environ={"FRUIT_DB_PASSWORD": "hunter2"}
    )
    pear = next(d for d in config.deployments() if d.name == "PearStand")
    assert dict(pear.env)["DB_PASSWORD"] == "hunter2"
    with pytest.raises(ConfigError) as caught:
        load_config(VALID, "extensions_and_anchors.yaml", environ={})
    (issue,) = caught.value.issues
    assert "FRUIT_DB_PASSWORD" in issue.message and issue.line == 13


def test_redacted_document_hides_secret_values_only() -> None:
    config = load_config(VALID, "extensions_and_anchors.yaml")
    shown = redacted_document(config)
    env = shown["runtime_env"]["env_vars"]
    assert env["API_TOKEN"] == {"value": "<redacted>", "secret": True}
    assert env["REGION"] == "eu" and env["DB_PASSWORD"] == {"from_env": "FRUIT_DB_PASSWORD"}
    assert config.document["runtime_env"]["env_vars"]["API_TOKEN"]["value"] == "s3cret"
    assert "s3cret" not in repr(shown)


def test_version_ignores_lightweight_changes(repo: Path) -> None:
    before = {d.name: d for d in load_config(repo).deployments()}
    text = (repo / "serve_config.yaml").read_text()
    (repo / "serve_config.yaml").write_text(
        text.replace("price: 3", "price: 5").replace("num_replicas: 2", "num_replicas: 3")
    )
    after = {d.name: d for d in load_config(repo).deployments()}
    assert after["MangoStand"].user_config == {"price": 5}
    assert after["FruitMarket"].num_replicas == 3
    assert {n: d.version for n, d in before.items()} == {n: d.version for n, d in after.items()}
    assert after["MangoStand"].user_config_hash != before["MangoStand"].user_config_hash


@pytest.mark.parametrize(
    "edit",
    [
        ("fruit.py", "return -1", "return -2"),
        ("serve_config.yaml", "runtime_env: {}", "runtime_env: {image_uri: 'python:3.12'}"),
        ("serve_config.yaml", "runtime_env: {}", "runtime_env: {env_vars: {A: b}}"),
        (
            "serve_config.yaml",
            "num_cpus: 0.1\n\n  - name: OrangeStand",
            "num_cpus: 0.2\n\n  - name: OrangeStand",
        ),
        (
            "serve_config.yaml",
            "import_path: fruit:deployment_graph",
            "import_path: fruit.deployment_graph",
        ),
    ],
    ids=["code", "image", "env", "resources", "import_path"],
)
def test_version_changes_with_heavyweight_fields(repo: Path, edit: tuple[str, str, str]) -> None:
    before = _deployment(repo, "MangoStand").version
    file, old, new = edit
    text = (repo / file).read_text()
    assert old in text
    (repo / file).write_text(text.replace(old, new))
    assert _deployment(repo, "MangoStand").version != before


def test_symlinked_working_dir_outside_the_repository(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    os.symlink(outside, repo / "code")
    (repo / "serve_config.yaml").write_text(
        "import_path: fruit:deployment_graph\nruntime_env: {working_dir: code}\n"
    )
    assert any("symlink to a place outside the repository" in m for m in _issues(repo))


def test_symlinked_file_inside_the_code_leading_outside(repo: Path) -> None:
    os.symlink("/etc/hostname", repo / "host.txt")
    assert any("'host.txt' is a symlink to a place outside" in m for m in _issues(repo))


def test_symlink_inside_the_repository_is_fine(repo: Path) -> None:
    (repo / "data").mkdir()
    (repo / "data" / "prices.txt").write_text("3")
    os.symlink("data/prices.txt", repo / "prices.txt")
    files = dict(_deployment(repo, "MangoStand").code.files)  # type: ignore[union-attr]
    assert files["prices.txt"] == files["data/prices.txt"]


def test_code_tree_caps(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codetree, "MAX_FILES", 3)
    for i in range(4):
        (repo / f"extra{i}.txt").write_text("x")
    assert any("more than 3 files" in m for m in _issues(repo))


def test_config_files_and_caches_are_not_code(repo: Path) -> None:
    before = _deployment(repo, "MangoStand").version
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "fruit.cpython-311.pyc").write_bytes(b"\0")
    (repo / ".git").mkdir()
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    shutil.copy(EXAMPLES / "multi_app_config.yaml", repo / "multi_app_config.yaml")
    assert _deployment(repo, "MangoStand").version == before


def test_oversized_config_is_refused(repo: Path) -> None:
    (repo / "serve_config.yaml").write_text(
        "import_path: fruit:deployment_graph\n" + "# padding\n" * 120_000
    )
    (message,) = _issues(repo)
    assert "may be at most 1 MiB" in message


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    assert "cannot read the config" in _issues(tmp_path)[0]
    assert "inside the repository" in _issues(tmp_path, "../x.yaml")[0]


def test_validate_file_names_files_as_given() -> None:
    issues = validate_file(HERE / "invalid" / "code_bad_value.yaml", root=HERE / "invalid")
    assert [Path(i.file).name for i in issues] == ["badvalue.py"]
    assert validate_file(EXAMPLES / "serve_config.yaml") == []


def test_find_config_files() -> None:
    found = [p.name for p in find_config_files(EXAMPLES)]
    assert found == ["multi_app_config.yaml", "serve_config.yaml"]
    assert [p.name for p in find_config_files(VALID)] == ["py_modules_config.yaml"]


def test_validating_the_fruit_config_is_fast() -> None:
    load_config(EXAMPLES)  # warm the schema cache, as a long-lived process would
    start = time.process_time()  # CPU time: a busy machine delays the test, not the work
    for _ in range(10):
        load_config(EXAMPLES)
    per_load = (time.process_time() - start) / 10
    print(f"fruit config validated in {per_load * 1000:.1f} ms of CPU")
    assert per_load < 0.25
