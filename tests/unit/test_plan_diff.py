"""classify() and diff_configs(): what a config change does to each deployment, and why."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_plan import config, spec

from reconciler.model import AutoscalingConfig, CodeTree, PackageSet, Requirement, Resources
from reconciler.plan import DeploymentChange, classify, diff_configs
from reconciler.spec import pep508


def code(**files: str) -> CodeTree:
    return CodeTree(root="/x", dirs=(".",), files=tuple(sorted(files.items())))


def test_create_and_remove() -> None:
    s = spec(n=3)
    assert classify(None, s) == DeploymentChange("app", "D", "create", 0, 3, ("new",))
    assert classify(s, None) == DeploymentChange("app", "D", "remove", 3, 0, ("removed",))
    with pytest.raises(ValueError):
        classify(None, None)


def test_identical_is_unchanged_with_no_reasons() -> None:
    s = spec(user_config={"a": 1})
    assert classify(s, replace(s)) == DeploymentChange("app", "D", "unchanged", 2, 2, ())


def test_scale_only() -> None:
    change = classify(spec(n=2), spec(n=4))
    assert (change.kind, change.from_replicas, change.to_replicas) == ("scale", 2, 4)
    assert change.reasons == ("num_replicas 2 -> 4",)


def test_user_config_is_a_reconfigure_and_beats_scale() -> None:
    change = classify(spec(n=2, user_config={"p": 3}), spec(n=3, user_config={"p": 5}))
    assert change.kind == "reconfigure"
    assert change.reasons == ("user_config changed", "num_replicas 2 -> 3")


def test_code_change_restarts_and_names_the_files() -> None:
    old = replace(spec(), code=code(**{"fruit.py": "a", "util/x.py": "b", "keep.py": "k"}))
    new = replace(old, code=code(**{"fruit.py": "A", "keep.py": "k", "new.py": "n"}))
    change = classify(old, new)
    assert change.kind == "restart"
    assert change.reasons == ("code changed: fruit.py, new.py, util/x.py",)


def test_restart_and_scale_together_keeps_both_counts() -> None:
    change = classify(spec(n=2, code="v1"), spec(n=5, code="v2"))
    assert (change.kind, change.from_replicas, change.to_replicas) == ("restart", 2, 5)
    assert change.reasons == ("image changed: img:v1 -> img:v2", "num_replicas 2 -> 5")


def test_env_changes_name_the_variables_never_the_values() -> None:
    old = spec(env=(("API_KEY", "hunter2"), ("GONE", "x"), ("SAME", "s")))
    new = spec(env=(("API_KEY", "correct-horse"), ("NEW", "y"), ("SAME", "s")))
    change = classify(old, new)
    assert change.kind == "restart"
    assert change.reasons == (
        "env var API_KEY changed",
        "env var GONE removed",
        "env var NEW added",
    )
    text = repr(change)
    assert "hunter2" not in text and "correct-horse" not in text


def test_marking_a_value_secret_restarts_to_take_it_out_of_the_container_env() -> None:
    # a secret value reaches the replica in a file, not the container's Env: a replica made
    # while it was plain still shows it to `docker inspect` until replaced
    plain = spec(env=(("TOKEN", "t"), ("PLAIN", "p")))
    secret = replace(plain, secret_env=frozenset({"TOKEN"}))
    assert plain.version != secret.version
    change = classify(plain, secret)
    assert (change.kind, change.reasons) == ("restart", ("env var TOKEN marked secret",))
    assert classify(secret, plain).reasons == ("env var TOKEN no longer secret",)
    # deployments without secrets keep the version they had (computed by the release before
    # secrets moved to a file): an upgrade restarts none of them
    assert plain.version == "cdb1f5b0a0b6"


def test_resources_import_path_and_args() -> None:
    old = spec(resources=Resources(num_cpus=0.1, memory=None))
    new = spec(
        resources=Resources(num_cpus=0.5, memory=2**20), import_path="other:app", args='{"a":1}'
    )
    assert classify(old, new).reasons == (
        "import_path changed: mod:app -> other:app",
        "num_cpus 0.1 -> 0.5",
        f"memory None -> {2**20}",
        "args changed",
    )


def test_baked_in_settings_apply_to_new_replicas_without_a_restart() -> None:
    old = spec()
    new = spec(max_ongoing_requests=9, health_check_period_s=3.0, graceful_shutdown_timeout_s=1.0)
    assert new.version == old.version
    change = classify(old, new)
    assert change.kind == "unchanged"
    assert change.reasons == (
        "max_ongoing_requests changed (applies to new replicas)",
        "graceful_shutdown_timeout_s changed (applies to new replicas)",
        "health_check_period_s changed (applies to new replicas)",
    )


def test_route_prefix_is_reported_without_changing_the_kind() -> None:
    change = classify(spec(route_prefix="/a"), spec(route_prefix="/b"))
    assert change.kind == "unchanged"
    assert change.reasons == ("route_prefix /a -> /b",)


def test_autoscaled_deployments_change_bounds_not_replica_counts() -> None:
    def auto(**kw: object) -> AutoscalingConfig:
        return AutoscalingConfig(**{"min_replicas": 1, "max_replicas": 4, **kw})  # type: ignore[arg-type]

    old = spec(n=1, autoscaling_config=auto())
    moved = classify(old, spec(n=2, autoscaling_config=auto(min_replicas=2, max_replicas=8)))
    assert moved.kind == "scale"
    assert moved.reasons == ("autoscaling bounds 1-4 -> 2-8",)
    assert moved.scaling == ("autoscaling 1-4", "autoscaling 2-8")
    tuned = classify(old, spec(n=1, autoscaling_config=auto(upscale_delay_s=5.0)))
    assert tuned.kind == "unchanged"
    assert tuned.reasons == ("autoscaling_config changed: upscale_delay_s 30.0 -> 5.0",)
    fixed = classify(old, spec(n=3))
    assert (fixed.kind, fixed.reasons) == ("scale", ("autoscaling 1-4 -> 3 replicas",))


def test_diff_configs_covers_both_sides_in_order() -> None:
    a, b, c = spec("A"), spec("B", n=1), spec("C", app="gone")
    base = config(a, b, c)
    head = config(spec("New"), replace(a, num_replicas=3), b)
    changes = diff_configs(base, head)
    assert [(ch.deployment, ch.kind) for ch in changes] == [
        ("New", "create"),
        ("A", "scale"),
        ("B", "unchanged"),
        ("C", "remove"),
    ]
    assert [ch.kind for ch in diff_configs(None, head)] == ["create"] * 3


def _packages(*lines: str, installer: str = "pip", check: bool = False) -> PackageSet:
    requirements = tuple(Requirement(line, pep508.parse(line).name) for line in lines)
    return PackageSet(installer, requirements, check=check)


def test_a_package_change_is_an_image_rebuild_naming_the_packages() -> None:
    old = replace(spec(), packages=_packages("requests==2.31.0", "pyyaml"))
    new = replace(spec(), packages=_packages("requests==2.32.3", "numpy", check=True))
    change = classify(old, new)
    assert change.kind == "restart"
    assert change.reasons == (
        "image rebuild (pip: numpy added, pyyaml removed, requests==2.31.0 -> requests==2.32.3, "
        "pip_check false -> true)",
    )
    added = classify(replace(spec()), replace(spec(), packages=_packages("numpy")))
    assert added.reasons == ("image rebuild (pip: numpy added)",)
    moved = classify(new, replace(new, packages=_packages("numpy", installer="uv")))
    assert moved.reasons[0].startswith("image rebuild (uv: requests removed")


def test_the_built_image_is_not_a_change() -> None:
    s = spec()
    assert classify(s, replace(s, built_image="serve-reconciler/app:x-1")).kind == "unchanged"
