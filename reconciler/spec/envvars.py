"""runtime_env env_vars: the three ways to give a value (plain, secret, from the reconciler's
environment), the deployment-over-application merge, and redaction for GET /config."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

REDACTED = "<redacted>"


@dataclass(frozen=True)
class EnvEntry:
    value: str
    secret: bool


def read_env_vars(
    raw: Any, environ: Mapping[str, str] | None
) -> tuple[dict[str, EnvEntry], list[tuple[str, str]]]:
    """The entries of an env_vars mapping (already schema-checked), and (name, message) issues.
    `environ` None means validate mode: `from_env` values stay "" and are not looked up."""
    entries: dict[str, EnvEntry] = {}
    issues: list[tuple[str, str]] = []
    if not isinstance(raw, Mapping):
        return entries, issues
    for name, spec in raw.items():
        if isinstance(spec, str):
            entries[name] = EnvEntry(spec, False)
        elif isinstance(spec, Mapping) and isinstance(spec.get("value"), str):
            entries[name] = EnvEntry(spec["value"], spec.get("secret") is True)
        elif isinstance(spec, Mapping) and isinstance(spec.get("from_env"), str):
            value, problem = _from_env(spec["from_env"], environ)
            entries[name] = EnvEntry(value, True)
            if problem:
                issues.append((name, problem))
    return entries, issues


def _from_env(source: str, environ: Mapping[str, str] | None) -> tuple[str, str | None]:
    if environ is None:
        return "", None
    if source not in environ:
        return "", (
            f"from_env: the reconciler's environment has no variable {source}; set it "
            "where the reconciler runs"
        )
    value = environ[source]
    if "\0" in value or "\n" in value or "\r" in value:
        return "", (
            f"from_env: the reconciler's variable {source} holds a NUL or newline "
            "character, which a container environment cannot carry safely"
        )
    return value, None


def merge_runtime_env(
    app: Mapping[str, Any] | None, deployment: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Ray's rule: the deployment's keys replace the application's, except env_vars, which
    merge key by key with the deployment winning."""
    merged = dict(app or {})
    for key, value in (deployment or {}).items():
        if key == "env_vars" and isinstance(value, Mapping):
            base = merged.get("env_vars")
            merged["env_vars"] = {**(base if isinstance(base, Mapping) else {}), **value}
        else:
            merged[key] = value
    return merged


def redact(document: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the document with every secret env var value replaced by <redacted>."""
    result: dict[str, Any] = copy.deepcopy(dict(document))
    for env_vars in _env_var_maps(result):
        for name, spec in list(env_vars.items()):
            if isinstance(spec, dict) and spec.get("secret") is True and "value" in spec:
                env_vars[name] = {**spec, "value": REDACTED}
    return result


def _env_var_maps(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    apps = document.get("applications")
    holders = [a for a in apps if isinstance(a, dict)] if isinstance(apps, list) else [document]
    for app in holders:
        yield from _in_runtime_env(app.get("runtime_env"))
        deployments = app.get("deployments")
        for dep in deployments if isinstance(deployments, list) else []:
            options = dep.get("ray_actor_options") if isinstance(dep, dict) else None
            if isinstance(options, dict):
                yield from _in_runtime_env(options.get("runtime_env"))


def _in_runtime_env(runtime_env: Any) -> Iterator[dict[str, Any]]:
    if isinstance(runtime_env, dict) and isinstance(runtime_env.get("env_vars"), dict):
        yield runtime_env["env_vars"]
