"""One deployment's options: the checks a schema cannot make (pairs that exclude each other,
autoscaling bounds, JSON-only user_config), and the resolution of every field, per field, as
config > code (@serve.deployment / .options()) > Serve's default."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.model import (
    AUTO_NUM_REPLICAS,
    AutoscalingConfig,
    CodeTree,
    DeploymentSpec,
    PackageSet,
    Resources,
    canonical_json,
)

# (key path inside the options mapping, message, point at the key rather than the value)
Report = Callable[[tuple[str | int, ...], str, bool], None]

AUTO_DEFAULTS: Mapping[str, Any] = AUTO_NUM_REPLICAS
# Fields of autoscaling_config the model carries typed: float-valued, null meaning the default.
_AUTOSCALING_FLOATS = (
    "metrics_interval_s",
    "look_back_period_s",
    "smoothing_factor",
    "upscale_delay_s",
    "downscale_delay_s",
)
_AUTOSCALING_OPTIONAL = (
    "upscale_smoothing_factor",
    "downscale_smoothing_factor",
    "upscaling_factor",
    "downscaling_factor",
    "downscale_to_zero_delay_s",
)
_AUTOSCALING_MODELLED = (
    "min_replicas",
    "max_replicas",
    "initial_replicas",
    "target_ongoing_requests",
    "target_num_ongoing_requests_per_replica",
    "aggregation_function",
    *_AUTOSCALING_FLOATS,
    *_AUTOSCALING_OPTIONAL,
)
DEFAULTS: Mapping[str, float] = {
    "graceful_shutdown_wait_loop_s": 2.0,
    "graceful_shutdown_timeout_s": 20.0,
    "health_check_period_s": 10.0,
    "health_check_timeout_s": 30.0,
}
MAX_ONGOING_DEFAULT = 5
# Options Serve takes in code that have no meaning for a config (and no schema entry).
CODE_ONLY = frozenset({"version", "init_args", "init_kwargs", "is_driver_deployment"})


def check_options(options: Mapping[str, Any], *, is_ingress: bool, report: Report) -> None:
    """What the schema cannot say about one deployment's options (config entry or code)."""
    if "max_ongoing_requests" in options and "max_concurrent_queries" in options:
        report(
            ("max_concurrent_queries",),
            "give max_ongoing_requests or its old name max_concurrent_queries, not both",
            True,
        )
    replicas, autoscaling = options.get("num_replicas"), options.get("autoscaling_config")
    if _is_int(replicas) and isinstance(autoscaling, Mapping):
        report(
            ("num_replicas",),
            "num_replicas cannot be combined with autoscaling_config: "
            "remove one (num_replicas: auto means autoscaling with defaults)",
            False,
        )
    if isinstance(autoscaling, Mapping) or replicas == "auto":
        auto = autoscaling if isinstance(autoscaling, Mapping) else {}
        _check_bounds(_autoscaling_values(auto, replicas == "auto"), report)
    if not is_ingress and options.get("route_prefix") is not None:
        report(
            ("route_prefix",),
            "only the ingress deployment (the outermost .bind()) can "
            "have a route_prefix; remove it or set it to null",
            False,
        )
    if "user_config" in options:
        problem = json_problem(options["user_config"])
        if problem:
            report(("user_config",), f"user_config must be JSON: {problem}", False)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bounds(values: Mapping[str, Any], report: Report) -> None:
    low, high, initial = (
        values.get("min_replicas"),
        values.get("max_replicas"),
        values.get("initial_replicas"),
    )
    if not (isinstance(low, int) and isinstance(high, int)):
        return
    where = ("autoscaling_config",)
    if high < low:
        report(
            (*where, "max_replicas"),
            f"max_replicas ({high}) must be greater than or equal to min_replicas ({low})",
            False,
        )
    elif isinstance(initial, int) and not low <= initial <= high:
        report(
            (*where, "initial_replicas"),
            f"initial_replicas ({initial}) must be between "
            f"min_replicas ({low}) and max_replicas ({high})",
            False,
        )


def json_problem(value: Any, depth: int = 0) -> str | None:
    """Why `value` would not survive a JSON round trip, or None."""
    if depth > 50:
        return "nested too deeply"
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "NaN and infinity are not JSON"
    if isinstance(value, list | tuple):
        return next((p for v in value if (p := json_problem(v, depth + 1))), None)
    if isinstance(value, dict):
        if any(not isinstance(k, str) for k in value):
            return "mapping keys must be strings"
        return next((p for v in value.values() if (p := json_problem(v, depth + 1))), None)
    return f"a {type(value).__name__} is not JSON"


def _autoscaling_values(given: Mapping[str, Any], auto: bool) -> dict[str, Any]:
    base = dict(AUTO_DEFAULTS) if auto else {"min_replicas": 1, "max_replicas": 1}
    return {**base, **{k: v for k, v in given.items() if not str(k).startswith("x-")}}


def autoscaling_model(given: Mapping[str, Any], auto: bool) -> AutoscalingConfig:
    values = _autoscaling_values(given, auto)
    target = next(
        (
            values[k]
            for k in ("target_ongoing_requests", "target_num_ongoing_requests_per_replica")
            if values.get(k) is not None
        ),
        2.0,
    )
    extra = tuple(
        sorted((k, canonical_json(v)) for k, v in values.items() if k not in _AUTOSCALING_MODELLED)
    )
    floats = {k: float(values[k]) for k in _AUTOSCALING_FLOATS if values.get(k) is not None}
    optional = {k: float(values[k]) for k in _AUTOSCALING_OPTIONAL if values.get(k) is not None}
    return AutoscalingConfig(
        min_replicas=int(values["min_replicas"]),
        max_replicas=int(values["max_replicas"]),
        initial_replicas=None
        if values.get("initial_replicas") is None
        else int(values["initial_replicas"]),
        target_ongoing_requests=float(target),
        aggregation_function=str(values.get("aggregation_function") or "mean").lower(),
        extra=extra,
        **floats,
        **optional,
    )


def _pick(entry: Mapping[str, Any], code: Mapping[str, Any], *keys: str) -> Any:
    """The first non-null value of `keys`, looking in the config entry, then the code."""
    for source in (entry, code):
        for key in keys:
            if source.get(key) is not None:
                return source[key]
    return None


def replicas(
    entry: Mapping[str, Any], code: Mapping[str, Any]
) -> tuple[int, AutoscalingConfig | None]:
    """Target replica count and autoscaling bounds. The config decides the pair when it sets
    either half; "auto" means Serve's autoscaling defaults, overridden field by field."""
    if "autoscaling_config" in entry:
        autoscaling = entry["autoscaling_config"]
    elif entry.get("num_replicas") is None:
        autoscaling = code.get("autoscaling_config")
    else:
        autoscaling = None
    count = entry.get("num_replicas")
    if count is None and autoscaling is None:
        count = code.get("num_replicas")
    if count == "auto" or isinstance(autoscaling, Mapping):
        model = autoscaling_model(
            autoscaling if isinstance(autoscaling, Mapping) else {}, count == "auto"
        )
        return model.start_replicas, model
    return (int(count) if count is not None else 1), None


def resources(entry: Mapping[str, Any], code: Mapping[str, Any]) -> Resources:
    """ray_actor_options counts as one field: the config's replaces the code's as a whole."""
    options = (
        entry["ray_actor_options"]
        if "ray_actor_options" in entry
        else code.get("ray_actor_options")
    )
    options = options if isinstance(options, Mapping) else {}
    cpus, gpus, memory = (options.get("num_cpus"), options.get("num_gpus"), options.get("memory"))
    custom = options.get("resources") or {}
    return Resources(
        num_cpus=1.0 if cpus is None else float(cpus),
        num_gpus=0.0 if gpus is None else float(gpus),
        memory=None if memory is None else int(memory),
        custom=tuple(sorted((str(k), float(v)) for k, v in custom.items())),
    )


def actor_runtime_env(entry: Mapping[str, Any], code: Mapping[str, Any]) -> Mapping[str, Any]:
    options = (
        entry["ray_actor_options"]
        if "ray_actor_options" in entry
        else code.get("ray_actor_options")
    )
    runtime_env = options.get("runtime_env") if isinstance(options, Mapping) else None
    return runtime_env if isinstance(runtime_env, Mapping) else {}


def build_spec(
    *,
    app: str,
    name: str,
    import_path: str,
    route_prefix: str | None,
    is_ingress: bool,
    entry: Mapping[str, Any],
    code: Mapping[str, Any],
    env: tuple[tuple[str, str], ...],
    secret_env: frozenset[str],
    image: str | None,
    tree: CodeTree,
    args: str,
    packages: PackageSet | None = None,
    multiplexed: bool = False,
) -> DeploymentSpec:
    """A fully resolved DeploymentSpec from a checked config entry and code options."""
    count, autoscaling = replicas(entry, code)
    user_config = entry["user_config"] if "user_config" in entry else code.get("user_config")
    limit = _pick(entry, code, "max_ongoing_requests", "max_concurrent_queries")
    timings: dict[str, float] = {}
    for key, default in DEFAULTS.items():
        value = _pick(entry, code, key)
        timings[key] = default if value is None else float(value)
    return DeploymentSpec(
        app=app,
        name=name,
        import_path=import_path,
        num_replicas=count,
        route_prefix=route_prefix if is_ingress else None,
        is_ingress=is_ingress,
        max_ongoing_requests=int(limit) if limit is not None else MAX_ONGOING_DEFAULT,
        user_config=_plain_json(user_config),
        autoscaling_config=autoscaling,
        resources=resources(entry, code),
        image=image,
        env=env,
        secret_env=secret_env,
        code=tree,
        args=args,
        packages=packages,
        built_image=None,
        multiplexed=multiplexed,
        **timings,
    )


def _plain_json(value: Any) -> Any:
    """Tuples from code literals become lists, as a JSON round trip would make them."""
    if isinstance(value, list | tuple):
        return [_plain_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_json(v) for k, v in value.items()}
    return value
