"""The JSON Schema of a Serve config: where it is loaded from, and how jsonschema's errors become
issues in plain words, located at the offending key or value."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from reconciler.spec.issues import DocPath, did_you_mean, format_path

SCHEMA_NAME = "serve-config.schema.json"
_PACKAGE_COPY = Path(__file__).with_name(SCHEMA_NAME)
_REPO_COPY = Path(__file__).resolve().parents[2] / "schemas" / SCHEMA_NAME

# Keys that exist, but not where the user wrote them: say where they belong.
_SINGLE_ONLY = ("import_path", "runtime_env", "host", "port", "deployments", "args")
_MULTI_ONLY = (
    "http_options",
    "applications",
    "proxy_location",
    "grpc_options",
    "logging_config",
    "target_capacity",
    "controller_options",
    "tracing_config",
)


def schema_path() -> Path:
    """`<repo>/schemas/...` next to the package when present, else the package-data copy."""
    return _REPO_COPY if _REPO_COPY.is_file() else _PACKAGE_COPY


@functools.cache
def schema() -> Mapping[str, Any]:
    loaded: Mapping[str, Any] = json.loads(schema_path().read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator(definition: str | None) -> Draft202012Validator:
    root = dict(schema())
    if definition is not None:
        root = {**root, "$ref": f"#/$defs/{definition}"}
        for key in ("if", "then", "else", "type"):
            root.pop(key, None)
    return Draft202012Validator(root)


def check(document: Any, definition: str | None = None) -> Iterator[tuple[DocPath, bool, str]]:
    """(path, at_key, message) for each schema violation; `definition` checks against one of
    the schema's $defs (e.g. "deployment") instead of the whole config."""
    for error in _validator(definition).iter_errors(document):
        yield from _translate(error)


def _translate(error: ValidationError) -> Iterator[tuple[DocPath, bool, str]]:
    path: DocPath = tuple(error.absolute_path)
    schema_node = error.schema if isinstance(error.schema, Mapping) else {}
    kind = error.validator
    if "propertyNames" in error.absolute_schema_path:
        key = str(error.instance)
        yield (*path, key), True, f"'{key}': {schema_node.get('errorMessage', 'invalid name')}"
        return
    if kind == "additionalProperties":
        yield from _unknown_keys(error, path)
        return
    if kind == "required":
        for key in error.validator_value:
            if isinstance(error.instance, Mapping) and key not in error.instance:
                yield (*path, key), False, f"missing required key '{key}'{_where(path)}"
        return
    custom = schema_node.get("errorMessage")
    if kind in ("anyOf", "oneOf") and error.context:
        branch = _matching_branch(error.context)
        if not branch and isinstance(custom, str):
            yield path, False, custom
            return
        if not branch:
            branch = _fitting_branch(error.context) or [best_match(error.context)]
        for inner in branch:
            yield from _translate(inner)
        return
    if isinstance(custom, str):
        yield path, False, custom
        return
    yield path, False, _plain(error, path)


def _matching_branch(context: list[ValidationError]) -> list[ValidationError]:
    """The errors of the one alternative the value was evidently meant for: of the branches
    whose type fits, the single one that only complains about things inside the value."""
    branches: dict[Any, list[ValidationError]] = {}
    for err in context:
        branches.setdefault(err.relative_schema_path[0], []).append(err)
    fitting = [
        errs
        for errs in branches.values()
        if not any(e.validator == "type" and not e.relative_path for e in errs)
    ]
    inner = [errs for errs in fitting if all(e.relative_path for e in errs)]
    if len(inner) == 1:
        return inner[0]
    if len(fitting) == 1 and all("type" in e.schema for e in fitting[0] if not e.relative_path):
        return fitting[0]  # the value has the one type the schema offers for it
    return []


def _fitting_branch(context: list[ValidationError]) -> list[ValidationError]:
    """The errors of the only alternative whose type fits the value, if exactly one does."""
    branches: dict[Any, list[ValidationError]] = {}
    for err in context:
        branches.setdefault(err.relative_schema_path[0], []).append(err)
    fitting = [
        errs
        for errs in branches.values()
        if not any(e.validator == "type" and not e.relative_path for e in errs)
    ]
    return fitting[0] if len(fitting) == 1 else []


def _where(path: DocPath) -> str:
    return f" in {format_path(path)}" if path else ""


# Where each object of the schema sits in a config, for "a field of X, not of Y".
_PLACES = {
    "singleApp": "the top level",
    "multiApp": "the top level",
    "application": "applications[]",
    "deployment": "deployments[]",
    "rayActorOptions": "ray_actor_options",
    "runtimeEnv": "runtime_env",
    "autoscalingConfig": "autoscaling_config",
    "autoscalingPolicy": "an autoscaling policy",
    "loggingConfig": "logging_config",
    "requestRouterConfig": "request_router_config",
    "gangSchedulingConfig": "gang_scheduling_config",
    "deploymentActor": "deployment_actors[]",
    "httpOptions": "http_options",
    "grpcOptions": "grpc_options",
    "controllerOptions": "controller_options",
    "tracingConfig": "tracing_config",
}


@functools.cache
def _field_places() -> Mapping[str, tuple[str, ...]]:
    """Every field of the schema -> the places (in _PLACES' words) that have it."""
    found: dict[str, list[str]] = {}
    for name, definition in schema()["$defs"].items():
        for key in definition.get("properties", {}):
            place = _PLACES.get(name)
            if place and place not in found.setdefault(key, []):
                found[key].append(place)
    return {k: tuple(v) for k, v in found.items()}


def _place_of(node: Mapping[str, Any], path: DocPath) -> str:
    named = next((_PLACES.get(n, n) for n, d in schema()["$defs"].items() if d is node), None)
    return named or format_path([p for p in path if isinstance(p, str)]) or "the top level"


def _unknown_keys(error: ValidationError, path: DocPath) -> Iterator[tuple[DocPath, bool, str]]:
    schema_node = error.schema
    known = list(schema_node.get("properties", {}))
    patterns = schema_node.get("patternProperties", {})
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    for key in instance:
        if key in known or (patterns and str(key).startswith("x-")):
            continue
        message = _unknown_key_message(str(key), path, known)
        elsewhere = _field_places().get(str(key), ())
        here = _place_of(schema_node, path)
        if elsewhere and here not in elsewhere and message.startswith("unknown key"):
            # A real Serve field in the wrong place: say where it belongs, never did-you-mean.
            message = f"'{key}' is a field of {' and '.join(elsewhere)}, not of {here}"
        yield (*path, key), True, message


def _unknown_key_message(key: str, path: DocPath, known: list[str]) -> str:
    if not path and key in _MULTI_ONLY and "import_path" in known:
        hint = (
            "in the single-application shape use host and port at the top"
            if key == "http_options"
            else "the single-application shape has none"
        )
        return f"'{key}' belongs to the multi-application shape (applications: [...]); {hint}"
    if not path and key in _SINGLE_ONLY and "applications" in known:
        return (
            f"'{key}' belongs to the single-application shape and cannot be mixed with "
            "applications; move it into an application"
        )
    if len(path) == 2 and path[0] == "applications" and key in ("host", "port"):
        return f"'{key}' cannot be set on an application; set it in http_options"
    if (
        path
        and path[-1] == "autoscaling_config"
        and key in ("max_ongoing_requests", "max_concurrent_queries")
    ):
        return f"'{key}' belongs to the deployment, not inside autoscaling_config"
    return f"unknown key '{key}'{did_you_mean(key, known)}"


_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "null",
}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "a mapping"


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _plain(error: ValidationError, path: DocPath) -> str:
    name = next((str(p) for p in reversed(path) if isinstance(p, str)), "the config")
    value, bound = error.instance, error.validator_value
    kind = error.validator
    if kind == "type":
        types = bound if isinstance(bound, list) else [bound]
        wanted = " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in types)
        return f"{name} must be {wanted}, not {_kind_of(value)} ({_shown(value)})"
    words = {
        "minimum": f"must be at least {bound}",
        "exclusiveMinimum": f"must be greater than {bound}",
        "maximum": f"must be at most {bound}",
        "exclusiveMaximum": f"must be less than {bound}",
        "minLength": "must not be empty" if bound == 1 else f"must be at least {bound} characters",
        "maxLength": f"must be at most {bound} characters",
        "minItems": f"must have at least {bound} items",
        "uniqueItems": "must not repeat items",
    }
    if kind in words:
        return f"{name} {words[kind]} (got {_shown(value)})"
    if kind in ("enum", "const"):
        options = bound if isinstance(bound, list) else [bound]
        shown = [o if isinstance(o, str) else json.dumps(o) for o in options]
        hint = did_you_mean(value, shown) if isinstance(value, str) else ""
        return f"{name} must be one of {', '.join(shown)}, not {_shown(value)}{hint}"
    return f"{name}: {error.message}"
