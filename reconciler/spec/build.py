"""`serve build` for this project: write a config from the deployments the code defines, with
every option spelled out (the code's value, else Serve's default), ready to edit and commit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError, ConfigIssue
from reconciler.spec.appcode import CodeOptions
from reconciler.spec.codescan import ScannedApp, ScannedDeployment, scan_app
from reconciler.spec.loader import load_bytes
from reconciler.spec.options import DEFAULTS, MAX_ONGOING_DEFAULT
from reconciler.spec.yamlout import dump_yaml

HEADER = (
    "# Written by `reconciler build {target}`. Every option is spelled out with the code's\n"
    "# value or Serve's default; edit and commit. Schema: schemas/serve-config.schema.json\n"
)


def deployment_entry(dep: ScannedDeployment, *, is_ingress: bool) -> dict[str, Any]:
    code = dep.options
    autoscaling = code.get("autoscaling_config")
    entry: dict[str, Any] = {"name": dep.name}
    entry["num_replicas"] = None if autoscaling else code.get("num_replicas", 1)
    if is_ingress and "route_prefix" in code:
        entry["route_prefix"] = code["route_prefix"]
    entry["max_ongoing_requests"] = code.get(
        "max_ongoing_requests", code.get("max_concurrent_queries", MAX_ONGOING_DEFAULT)
    )
    entry["user_config"] = code.get("user_config")
    entry["autoscaling_config"] = autoscaling
    for key, default in DEFAULTS.items():
        entry[key] = code.get(key, default)
    entry["ray_actor_options"] = code.get("ray_actor_options") or {"num_cpus": 1.0}
    return entry


def build_document(app: ScannedApp, import_path: str, *, multi_app: bool) -> dict[str, Any]:
    deployments = [deployment_entry(d, is_ingress=d.name == app.ingress) for d in app.specs]
    if not multi_app:
        return {
            "import_path": import_path,
            "runtime_env": {},
            "host": "0.0.0.0",
            "port": 8000,
            "deployments": deployments,
        }
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": 8000},
        "applications": [
            {
                "name": "app1",
                "route_prefix": "/",
                "import_path": import_path,
                "runtime_env": {},
                "deployments": deployments,
            }
        ],
    }


def build_config(
    import_path: str,
    app_dir: Path,
    *,
    multi_app: bool = False,
    config_name: str = "serve_config.yaml",
) -> str:
    """The config text for `import_path` under `app_dir`, checked by the loader as if it were
    saved as `app_dir/config_name`. Raises ConfigError when the code or the result is wrong."""
    scanned = scan_app(app_dir, ".", [], import_path)
    if isinstance(scanned, list):
        raise ConfigError(
            [i if i.file else ConfigIssue(import_path, 0, 0, "", i.message) for i in scanned]
        )
    text = HEADER.format(target=import_path) + dump_yaml(
        build_document(scanned, import_path, multi_app=multi_app)
    )
    reads_only = CodeOptions(no_sandbox_reason="`reconciler build` only reads the code")
    load_bytes(
        text.encode("utf-8"), root=app_dir, config_path=config_name, environ=None, code=reads_only
    )
    return text
