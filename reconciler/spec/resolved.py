"""Checks Serve makes on a deployment's options once the config's and the code's are combined
(field by field, the config winning; ray_actor_options as a whole): placement group bundles
against max_replicas_per_node and against the replica's resources, and user_config against the
class's reconfigure(). Each problem is reported where the offending value was written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.spec.codedefs import ScannedDeployment

# (whether the value is the config's, key path inside the options, message)
Report = Callable[[bool, tuple[str | int, ...], str], None]


def check(
    entry: Mapping[str, Any],
    code: Mapping[str, Any] | None,
    facts: ScannedDeployment | None,
    report: Report,
) -> None:
    """`code` None: the code's options are not known (only the config's are checked)."""
    known = code if code is not None else {}

    def pick(key: str) -> tuple[Any, bool]:
        if key in entry:
            return entry[key], True
        return (known.get(key), False) if code is not None else (None, False)

    _placement(pick, report, actor_known=code is not None or "ray_actor_options" in entry)
    if facts is not None:
        _user_config(pick("user_config"), facts, report)


def _placement(
    pick: Callable[[str], tuple[Any, bool]], report: Report, *, actor_known: bool
) -> None:
    bundles, bundles_from_config = pick("placement_group_bundles")
    per_node, per_node_from_config = pick("max_replicas_per_node")
    if per_node is not None and bundles is not None:
        report(
            per_node_from_config,
            ("max_replicas_per_node",),
            "max_replicas_per_node cannot be combined with placement_group_bundles (Serve "
            "refuses the pair): remove one",
        )
    for key in ("placement_group_strategy", "placement_group_bundle_label_selector"):
        value, from_config = pick(key)
        if value is not None and bundles is None:
            report(from_config, (key,), f"{key} needs placement_group_bundles")
    if not isinstance(bundles, list) or not bundles:
        return
    selectors, selectors_from_config = pick("placement_group_bundle_label_selector")
    if isinstance(selectors, list) and len(selectors) not in (1, len(bundles)):
        report(
            selectors_from_config,
            ("placement_group_bundle_label_selector",),
            f"give one label selector for all bundles or one per bundle ({len(bundles)}), "
            f"not {len(selectors)}",
        )
    for i, bundle in enumerate(bundles):
        if isinstance(bundle, Mapping) and bundle and all(v == 0 for v in bundle.values()):
            report(
                bundles_from_config,
                ("placement_group_bundles", i),
                "a placement group bundle cannot hold only zero amounts",
            )
    actor, _ = pick("ray_actor_options")
    if actor_known and isinstance(bundles[0], Mapping):
        _first_bundle(
            bundles[0], actor if isinstance(actor, Mapping) else {}, bundles_from_config, report
        )


def _first_bundle(
    bundle: Mapping[str, Any], actor: Mapping[str, Any], from_config: bool, report: Report
) -> None:
    """Serve places the replica in the first bundle: it must hold the replica's resources."""
    cpus = 1 if actor.get("num_cpus") is None else actor["num_cpus"]  # Serve's default
    wanted: dict[str, Any] = {"CPU": cpus, "GPU": actor.get("num_gpus") or 0}
    custom = actor.get("resources")
    wanted.update(custom if isinstance(custom, Mapping) else {})
    for resource, amount in wanted.items():
        have = bundle.get(resource, 0)
        if _number(amount) and _number(have) and have < amount:
            name = {"CPU": "num_cpus", "GPU": "num_gpus"}.get(resource, f"resources.{resource}")
            report(
                from_config,
                ("placement_group_bundles", 0),
                f"the replica is placed in the first placement group bundle, which must hold "
                f"its resources: it needs {resource} {amount:g} ({name}), the bundle has {have:g}",
            )


def _user_config(found: tuple[Any, bool], facts: ScannedDeployment, report: Report) -> None:
    value, from_config = found
    if value is None:
        return
    if facts.is_function:
        report(
            from_config,
            ("user_config",),
            f"{facts.class_name} is a function deployment, and Serve hands user_config only to "
            "a class's reconfigure(); make it a class or remove user_config",
        )
    elif facts.has_reconfigure is False:
        report(
            from_config,
            ("user_config",),
            f"{facts.class_name} has no reconfigure() method, so its replicas would fail to "
            "start with user_config set (Serve hands it to reconfigure); add one or remove "
            "user_config",
        )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
