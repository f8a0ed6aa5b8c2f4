"""What each Ray Serve 2.60 field does here when it is not simply implemented. Three verdicts:

- no effect on Docker: accepted, with a warning that says why (a single host has no placement
  groups, no gRPC ingress, no Serve controller...);
- not supported: refused ("not supported here: ..."), where ignoring the field would silently
  change what the application does (gang scheduling, a custom request router, TLS);
- Ray 2.60 ignores it but the reconciler honours it (old names such as max_concurrent_queries):
  accepted, with a warning, so that a config does not behave differently under the two.

A warning is only given for a value that does something in Serve (a default, as `serve build`
writes it, says nothing). The rules apply to the config and the code's options alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ERROR, WARNING

# (key path inside the checked mapping, message, severity)
Report = Callable[[tuple[str | int, ...], str, str], None]

CONFIG, CONFIG_MULTI, CODE = "config", "config-multi", "code"  # where the mapping comes from
DEFAULT_ROUTER = "ray.serve._private.request_router:PowerOfTwoChoicesRequestRouter"
DEFAULT_POLICY = "ray.serve.autoscaling_policy:default_autoscaling_policy"
_LOGGING_DEFAULTS: Mapping[str, Any] = {
    "encoding": "TEXT",
    "log_level": "INFO",
    "logs_dir": None,
    "enable_access_log": True,
    "additional_log_standard_attrs": [],
}
_ROUTER_DEFAULTS: Mapping[str, Any] = {
    "request_router_kwargs": {},
    "request_routing_stats_period_s": 10,
    "request_routing_stats_timeout_s": 30,
    "initial_backoff_s": 0.025,
    "backoff_multiplier": 2,
    "max_backoff_s": 0.5,
}
_ONE_HOST = "every replica runs on the one Docker host, as one container"
_NO_RETRY_LIMIT = (
    "the reconciler retries a deployment's failed replica starts with backoff (1 to 64 s) "
    "without a limit"
)


@dataclass(frozen=True)
class Rule:
    key: str
    severity: str
    applies: Callable[[Any], bool]  # does this value do something in Serve?
    message: str
    code_message: str | None = None  # when the option comes from @serve.deployment
    multi_message: str | None = None  # a deployment entry of the multi-application shape

    def text(self, source: str) -> str:
        if source == CODE and self.code_message:
            return self.code_message
        if source == CONFIG_MULTI and self.multi_message:
            return self.multi_message
        return self.message


def _set(value: Any) -> bool:
    return value is not None and value != [] and value != {}


def _true(value: Any) -> bool:
    return value is True


def _present(_value: Any) -> bool:
    return True


def _not(default: Any) -> Callable[[Any], bool]:
    return lambda value: value is not None and value != default


def _logging_changed(value: Any) -> bool:
    if not isinstance(value, Mapping):
        return False
    level = value.get("log_level", "INFO")
    changed = {k for k, v in value.items() if k in _LOGGING_DEFAULTS and v != _LOGGING_DEFAULTS[k]}
    if level == 20:  # INFO by number
        changed.discard("log_level")
    return bool(changed)


def _custom_router(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("request_router_class", DEFAULT_ROUTER) not in (
        None,
        DEFAULT_ROUTER,
    )


def _router_tuned(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and not _custom_router(value)
        and any(k in _ROUTER_DEFAULTS and v != _ROUTER_DEFAULTS[k] for k, v in value.items())
    )


def _custom_policy(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("policy_function", DEFAULT_POLICY) not in (
        None,
        DEFAULT_POLICY,
    )


def _backpressure_changed(value: Any) -> bool:
    return isinstance(value, Mapping) and (
        value.get("status_code", 503) != 503 or value.get("retry_after_s") is not None
    )


def _proxy_disabled(value: Any) -> bool:
    return value in ("Disabled", "NoServer")


def _tracing_on(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("enabled") is True


_LOGGING = Rule(
    "logging_config",
    WARNING,
    _logging_changed,
    "logging_config is not applied here: replicas log to their container's output "
    "(docker logs) in the runtime's own format",
)

RULES: Mapping[str, tuple[Rule, ...]] = {
    "top": (
        Rule(
            "proxy_location",
            WARNING,
            _proxy_disabled,
            "proxy_location Disabled: Serve would run no HTTP proxy, but the reconciler still "
            "runs its HTTP ingress (remove route prefixes to serve nothing over HTTP)",
        ),
        Rule(
            "target_capacity",
            WARNING,
            _set,
            "target_capacity has no effect here: the reconciler runs the full replica counts",
        ),
        Rule(
            "controller_options",
            WARNING,
            _set,
            "controller_options has no effect here: there is no Serve controller; set the "
            "reconciler's own environment where it runs",
        ),
        Rule(
            "tracing_config",
            WARNING,
            _tracing_on,
            "tracing_config has no effect here: the reconciler and its replicas export no traces",
        ),
        _LOGGING,
    ),
    "http": (
        Rule(
            "keep_alive_timeout_s",
            WARNING,
            _not(5),
            "keep_alive_timeout_s is not applied: the ingress closes idle client connections "
            "after 5 s",
        ),
        *(
            Rule(
                key,
                ERROR,
                _set,
                f"not supported here: {key} asks for HTTPS, and the ingress serves plain HTTP "
                "(ignoring it would serve without TLS); terminate TLS in front of the ingress",
            )
            for key in ("ssl_keyfile", "ssl_certfile", "ssl_keyfile_password", "ssl_ca_certs")
        ),
    ),
    "grpc": (
        Rule(
            "grpc_servicer_functions",
            WARNING,
            _set,
            "grpc_servicer_functions has no effect here: there is no gRPC ingress, only HTTP",
        ),
    ),
    "app": (
        Rule(
            "autoscaling_policy",
            WARNING,
            _set,
            "autoscaling_policy has no effect here: autoscaling policies run inside Serve's "
            "controller, and the reconciler runs none",
        ),
        Rule(
            "external_scaler_enabled",
            WARNING,
            _true,
            "external_scaler_enabled has no effect here: the reconciler has no scaling API for "
            "an external autoscaler; the replicas follow num_replicas in the config",
        ),
        _LOGGING,
    ),
    "deployment": (
        Rule(
            "route_prefix",
            WARNING,
            _present,
            "Ray 2.60 ignores a deployment's route_prefix (set route_prefix on the "
            "application); the reconciler honours it, as Ray 2.0-2.3 did",
            code_message="Ray 2.60's @serve.deployment has no route_prefix (it refuses the "
            "option); the reconciler honours it, as Ray 2.0-2.3 did",
            multi_message="Ray 2.60 ignores a deployment's route_prefix, and here the "
            "application's route_prefix wins too; set it on the application",
        ),
        Rule(
            "max_concurrent_queries",
            WARNING,
            _present,
            "Ray 2.60 ignores max_concurrent_queries (renamed max_ongoing_requests in Ray 2.10); "
            "the reconciler honours it as max_ongoing_requests: rename it",
            code_message="Ray 2.60's @serve.deployment has no max_concurrent_queries (renamed "
            "max_ongoing_requests in Ray 2.10); the reconciler honours it: rename it",
        ),
        Rule(
            "max_queued_requests",
            WARNING,
            _not(-1),
            "max_queued_requests has no effect here: the ingress queues requests without a cap "
            "instead of answering 503 when the queue is full",
        ),
        Rule(
            "backpressure_config",
            WARNING,
            _backpressure_changed,
            "backpressure_config has no effect here, as max_queued_requests has none",
        ),
        Rule(
            "placement_group_bundles",
            WARNING,
            _set,
            f"placement_group_bundles has no effect on Docker: {_ONE_HOST} limited by "
            "ray_actor_options",
        ),
        Rule(
            "placement_group_strategy",
            WARNING,
            _set,
            f"placement_group_strategy has no effect on Docker: {_ONE_HOST}",
        ),
        Rule(
            "placement_group_bundle_label_selector",
            WARNING,
            _set,
            f"placement_group_bundle_label_selector has no effect on Docker: {_ONE_HOST}",
        ),
        Rule(
            "max_replicas_per_node",
            WARNING,
            _set,
            f"max_replicas_per_node has no effect on Docker: {_ONE_HOST}",
        ),
        _LOGGING,
        Rule(
            "request_router_config",
            ERROR,
            _custom_router,
            "not supported here: a custom request_router_class; the ingress balances requests "
            "across the replicas itself and would silently bypass the router",
        ),
        Rule(
            "request_router_config",
            WARNING,
            _router_tuned,
            "request_router_config has no effect here: the ingress balances requests across the "
            "replicas itself (least connections)",
        ),
        Rule(
            "gang_scheduling_config",
            ERROR,
            _set,
            "not supported here: gang scheduling (starting, placing and restarting replicas as "
            "atomic groups); ignoring it would start and replace the replicas one by one",
        ),
        Rule(
            "deployment_actors",
            ERROR,
            _set,
            "not supported here: deployment-scoped actors are Ray actors, and there is no Ray "
            "cluster to run them (serve.get_deployment_actor() would fail in every replica)",
        ),
        Rule(
            "rolling_update_percentage",
            WARNING,
            _not(0.2),
            "rolling_update_percentage is not applied yet: the reconciler replaces 20% of the "
            "replicas at a time (Serve's default)",
        ),
        Rule(
            "max_surge_percent",
            WARNING,
            _present,
            "max_surge_percent has no effect here: the reconciler always starts a replacement "
            "and waits for its health check before it drains an old replica",
        ),
        Rule(
            "max_constructor_retry_count",
            WARNING,
            _present,
            "Ray 2.60 takes max_constructor_retry_count only from @serve.deployment and ignores "
            f"it in a config; {_NO_RETRY_LIMIT}",
            code_message=f"max_constructor_retry_count has no effect here: {_NO_RETRY_LIMIT}",
        ),
    ),
    "actor": (
        Rule(
            "accelerator_type",
            WARNING,
            _set,
            "accelerator_type has no effect on Docker: GPUs are requested by count (num_gpus), "
            "not by type",
        ),
        Rule(
            "label_selector",
            WARNING,
            _set,
            "label_selector has no effect on Docker: a single host has no node labels to select",
        ),
        Rule(
            "fallback_strategy",
            WARNING,
            _set,
            "fallback_strategy has no effect on Docker: a single host has nothing to fall back to",
        ),
        Rule(
            "resources",
            WARNING,
            _set,
            "custom resources reserve nothing on Docker unless the reconciler is told the host "
            "has them (--resources '{\"NAME\": AMOUNT}'); the values are recorded, so a change "
            "restarts the replicas",
        ),
        Rule(
            "object_store_memory",
            WARNING,
            _present,
            "Ray 2.60 ignores object_store_memory in a config (removed from ray_actor_options in "
            "Ray 2.40); there is no object store here either",
            code_message="Ray 2.60 refuses object_store_memory in ray_actor_options (removed in "
            "Ray 2.40)",
        ),
    ),
    "autoscaling": (
        Rule(
            "target_num_ongoing_requests_per_replica",
            WARNING,
            _present,
            "Ray 2.60 ignores target_num_ongoing_requests_per_replica (renamed "
            "target_ongoing_requests in Ray 2.10); the reconciler honours it as "
            "target_ongoing_requests: rename it",
        ),
        Rule(
            "policy",
            WARNING,
            _custom_policy,
            "a custom autoscaling policy has no effect here: policies run inside Serve's "
            "controller, and the reconciler runs none",
        ),
    ),
}

# Where Ray 2.60 refuses in code what it only drops from a config.
_ERROR_IN_CODE = frozenset({("actor", "object_store_memory")})


def check(kind: str, mapping: Any, report: Report, *, source: str = CONFIG) -> None:
    """Report every rule of `kind` that applies to a key of `mapping`."""
    if not isinstance(mapping, Mapping):
        return
    for rule in RULES.get(kind, ()):
        if rule.key in mapping and rule.applies(mapping[rule.key]):
            severity = ERROR if source == CODE and (kind, rule.key) in _ERROR_IN_CODE else None
            report((rule.key,), rule.text(source), severity or rule.severity)


def check_deployment(options: Mapping[str, Any], report: Report, *, source: str) -> None:
    """The rules of a deployment's options and of its nested ray_actor_options and
    autoscaling_config."""
    check("deployment", options, report, source=source)
    for key, kind in (("ray_actor_options", "actor"), ("autoscaling_config", "autoscaling")):

        def nested(path: tuple[str | int, ...], message: str, severity: str, at: str = key) -> None:
            report((at, *path), message, severity)

        check(kind, options.get(key), nested, source=source)
