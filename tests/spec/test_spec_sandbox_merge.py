"""The loader with a graph builder at its seam (a behavioural model: it answers what a sandbox
would): what reading decides stays, the sandbox decides the rest, failures are located, and
without a sandbox undecided code is a warning in validate mode and an error otherwise."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.errors import CodeBuildError, ConfigError, EngineUnavailable
from reconciler.model import CodeTree
from reconciler.ports import DescribedDeployment, GraphDescription
from reconciler.spec import load_checked, load_config, validate_file
from reconciler.spec.appcode import WARN, CodeOptions

VALID = Path(__file__).parent / "valid"


@dataclass
class Builder:
    """Answers with a fixed description (or raises), and records what it was asked."""

    answer: GraphDescription | Exception
    asked: list[dict[str, object]] = field(default_factory=list)

    def describe(
        self,
        *,
        code: CodeTree,
        import_path: str,
        args: str,
        image: str | None,
        env: tuple[tuple[str, str], ...] = (),
        packages: object = None,
    ) -> GraphDescription:
        self.asked.append(
            {
                "dirs": code.dirs,
                "import_path": import_path,
                "args": args,
                "image": image,
                "env": env,
            }
        )
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def _dep(name: str, cls: str | None = None, **options: object) -> DescribedDeployment:
    reconfigures = name == "Stand"  # as in optvars.py
    return DescribedDeployment(
        name=name, class_name=cls or name, options=options, has_reconfigure=reconfigures
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("optvars.py", "builders.py", "options_from_code.yaml", "builder_args.yaml"):
        shutil.copy(VALID / name, root / name)
    return root


def test_sandbox_decides_only_what_reading_could_not(repo: Path) -> None:
    builder = Builder(
        GraphDescription(
            "Market",
            (
                _dep("Stand", num_replicas=2, user_config={"price": 7}),
                _dep("Market", autoscaling_config={"min_replicas": 1, "max_replicas": 6}),
            ),
        )
    )
    config = load_config(repo, "options_from_code.yaml", graph_builder=builder)
    by_name = {d.name: d for d in config.deployments()}
    assert by_name["Stand"].num_replicas == 2 and by_name["Stand"].user_config == {"price": 7}
    market = by_name["Market"]
    assert market.autoscaling_config is not None and market.autoscaling_config.max_replicas == 6
    assert [d.name for d in config.applications[0].deployments] == ["Market", "Stand"]
    (asked,) = builder.asked
    assert asked["import_path"] == "optvars:app" and asked["image"] is None
    assert asked["env"] == (("MAX_REPLICAS", "6"),) and asked["args"] == "{}"


def test_builder_graph_comes_from_the_sandbox_and_the_config_overrides_it(repo: Path) -> None:
    (repo / "builder_args.yaml").write_text(
        (repo / "builder_args.yaml").read_text()
        + "deployments:\n  - name: Greeter\n    max_ongoing_requests: 9\n"
    )
    builder = Builder(GraphDescription("Greeter", (_dep("Greeter", num_replicas=3),)))
    config = load_config(repo, "builder_args.yaml", graph_builder=builder)
    (greeter,) = config.deployments()
    assert (greeter.num_replicas, greeter.max_ongoing_requests) == (3, 9)
    assert greeter.args == '{"greeting":"hej","replicas":3}'
    assert builder.asked[0]["args"] == greeter.args


def test_config_entries_are_checked_against_the_built_graph(repo: Path) -> None:
    (repo / "builder_args.yaml").write_text(
        (repo / "builder_args.yaml").read_text() + "deployments:\n  - name: Greter\n"
    )
    builder = Builder(GraphDescription("Greeter", (_dep("Greeter"),)))
    with pytest.raises(ConfigError) as caught:
        load_config(repo, "builder_args.yaml", graph_builder=builder)
    (issue,) = caught.value.issues
    assert (
        "no deployment named 'Greter'" in issue.message
        and "did you mean 'Greeter'" in issue.message
    )


def test_sandbox_options_obey_the_rules_and_point_at_the_class(repo: Path) -> None:
    builder = Builder(
        GraphDescription(
            "Market",
            (
                _dep("Stand", num_replicas=0, user_config={"price": 7}),
                _dep("Market", ray_actor_options={"__unserializable__": "<object at 0x1>"}),
            ),
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_config(repo, "options_from_code.yaml", graph_builder=builder)
    found = {(i.file, i.line): i.message for i in caught.value.issues}
    assert "not plain data" in found[("optvars.py", 24)]
    assert found.keys() == {("optvars.py", 24)}  # merge stops at the unusable answer
    builder.answer = GraphDescription("Market", (_dep("Stand", num_replicas=0), _dep("Market")))
    with pytest.raises(ConfigError) as caught:
        load_config(repo, "options_from_code.yaml", graph_builder=builder)
    (issue,) = caught.value.issues
    assert (issue.file, issue.line) == ("optvars.py", 15)
    assert "options of Stand: num_replicas must be a positive integer" in issue.message
    builder.answer = GraphDescription(
        "Market", (_dep("Stand", user_config={"p": 1}), _dep("Market"))
    )
    assert load_config(repo, "options_from_code.yaml", graph_builder=builder)


def test_a_failed_build_is_an_error_at_the_code_line(repo: Path) -> None:
    builder = Builder(
        CodeBuildError("importing optvars:app failed: KeyError: 'x'", file="optvars.py", line=9)
    )
    with pytest.raises(ConfigError) as caught:
        load_config(repo, "options_from_code.yaml", graph_builder=builder)
    (issue,) = caught.value.issues
    assert (issue.file, issue.line) == ("optvars.py", 9)
    assert issue.message.startswith("building the application in a sandbox failed: importing")


def test_no_engine_is_a_warning_when_validating_and_raises_when_deploying(repo: Path) -> None:
    builder = Builder(EngineUnavailable("the Docker engine is not reachable"))
    issues = validate_file(repo / "builder_args.yaml", root=repo, graph_builder=builder)
    assert [i.severity for i in issues] == ["warning"]
    assert "cannot decide without running the code" in issues[0].message
    assert "no sandbox could run: the Docker engine is not reachable" in issues[0].message
    with pytest.raises(EngineUnavailable):
        load_config(repo, "builder_args.yaml", graph_builder=builder)


def test_without_a_sandbox_undecided_code_is_never_deployed(repo: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(repo, "options_from_code.yaml")
    assert [i.severity for i in caught.value.issues] == ["error", "error"]
    assert all("cannot decide without running the code" in i.message for i in caught.value.issues)
    code = CodeOptions(undecided=WARN, no_sandbox_reason="--no-sandbox")
    config, warnings = load_checked(repo, "options_from_code.yaml", code=code)
    assert config.applications == () and len(warnings) == 2
    assert all("(--no-sandbox)" in w.message for w in warnings)


def test_decided_code_never_asks_the_sandbox(tmp_path: Path) -> None:
    builder = Builder(AssertionError("the sandbox must not be asked"))
    config = load_config(Path(__file__).parents[2] / "examples-repo", graph_builder=builder)
    assert builder.asked == [] and len(list(config.deployments())) == 4


def test_warnings_ride_along_with_the_config() -> None:
    config = load_config(VALID, "legacy_names.yaml")
    assert len(config.warnings) == 3
    assert config.warnings[0].startswith("legacy_names.yaml:8:5: warning: Ray 2.60 ignores")
    market = next(d for d in config.deployments() if d.name == "FruitMarket")
    assert market.max_ongoing_requests == 20 and market.route_prefix == "/market"
    pear = next(d for d in config.deployments() if d.name == "PearStand")
    assert pear.autoscaling_config is not None
    assert pear.autoscaling_config.target_ongoing_requests == 3


def test_every_260_autoscaling_field_is_carried() -> None:
    config = load_config(VALID, "ray260_every_field.yaml")
    model = next(d for d in config.deployments() if d.name == "Model")
    auto = model.autoscaling_config
    assert auto is not None and (auto.min_replicas, auto.max_replicas, auto.start_replicas) == (
        1,
        4,
        2,
    )
    assert auto.aggregation_function == "max" and auto.upscaling_factor == 1.5
    assert auto.upscale_factor == 1.5 and auto.downscale_to_zero_delay_s is None
    assert '"policy_function"' in dict(auto.extra)["policy"]
    front = next(d for d in config.deployments() if d.name == "Front")
    assert front.resources.num_cpus == 0.5 and front.user_config == {"greeting": "hi"}
    assert len(config.warnings) == 21


def _app(root: Path, source: str) -> None:
    (root / "m.py").write_text(textwrap.dedent(source))


def test_a_graph_reading_could_not_follow_is_the_sandboxs(tmp_path: Path) -> None:
    _app(
        tmp_path,
        """
        from ray import serve

        @serve.deployment(num_replicas=2)
        class Model:
            pass

        @serve.deployment
        class Chain:
            pass

        models = [Model.options(num_replicas=i + 1).bind() for i in range(2)]
        app = Chain.bind(*models)
        """,
    )
    (tmp_path / "serve_config.yaml").write_text("import_path: m:app\n")
    builder = Builder(
        GraphDescription(
            "Chain",
            (
                _dep("Model", "Model", num_replicas=1),
                _dep("Model_1", "Model", num_replicas=2),
                _dep("Chain"),
            ),
        )
    )
    config = load_config(tmp_path, graph_builder=builder)
    assert [(d.name, d.num_replicas) for d in config.deployments()] == [
        ("Chain", 1),
        ("Model", 1),
        ("Model_1", 2),
    ]
    builder.answer = GraphDescription(
        "Chain", (_dep("Model_1", "Model", num_replicas=0), _dep("Chain"))
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, graph_builder=builder)
    (issue,) = caught.value.issues  # at the class's num_replicas, found among the modules read
    assert (issue.file, issue.line) == ("m.py", 4) and "options of Model" in issue.message
