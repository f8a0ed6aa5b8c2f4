"""Describe mode: `python3 -m serve_replica.describe` builds the application as a replica would
and prints what it holds, as ONE line of JSON on stdout, for a sandboxed graph build.

Reads SERVE_IMPORT_PATH and SERVE_ARGS (JSON). Output:
  {"ingress": NAME, "deployments": [{"name", "class_name", "is_function", "options",
   "methods", "has_reconfigure", "has_check_health", "asgi_ingress", "multiplexed"}, ...]}
in Serve's post-order naming (children first, the ingress last). Options are those given in
code (@serve.deployment / .options()) except name; a value JSON cannot hold is reported as
{"__unserializable__": repr}. On failure: exit 1, the traceback on stderr, its last line
`ExcType: message`.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import traceback
from typing import Any

from . import logs
from .api import Application, asgi_app_of
from .graph import name_nodes
from .multiplex import has_multiplexed
from .startup import build_application, setup_path


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` if JSON holds it exactly, else {"__unserializable__": repr(value)}."""
    if depth > 50:
        return {"__unserializable__": repr(value)[:1000]}
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__unserializable__": repr(value)}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: json_safe(v, depth + 1) for k, v in value.items()}
    return {"__unserializable__": repr(value)[:1000]}


def public_methods(target: Any) -> list[str]:
    if not isinstance(target, type):
        return []
    names = []
    for name in dir(target):
        if name.startswith("_") and name != "__call__":
            continue
        if callable(inspect.getattr_static(target, name, None)) and not isinstance(
            inspect.getattr_static(target, name), type
        ):
            names.append(name)
    return sorted(names)


def describe_node(name: str, node: Application) -> dict[str, Any]:
    dep = node.deployment
    target = dep.func_or_class
    is_function = dep.is_function
    return {
        "name": name,
        "class_name": getattr(target, "__name__", type(target).__name__),
        "is_function": is_function,
        "options": {k: json_safe(v) for k, v in sorted(dep.options_given.items())},
        "methods": public_methods(target),
        "has_reconfigure": not is_function and callable(getattr(target, "reconfigure", None)),
        "has_check_health": not is_function and callable(getattr(target, "check_health", None)),
        "asgi_ingress": asgi_app_of(target) is not None,
        "multiplexed": has_multiplexed(target),
    }


def describe(import_path: str, args: dict[str, Any]) -> dict[str, Any]:
    root = build_application(import_path, args)
    nodes = list(name_nodes(root).values())  # post-order: the root is last
    ingress = next(name for name, node in nodes if node is root)
    return {"ingress": ingress, "deployments": [describe_node(n, node) for n, node in nodes]}


def main() -> int:
    logs.setup_describe()
    # What the user's module prints goes to stderr: stdout carries the one JSON line only.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        setup_path()
        args = json.loads(os.environ.get("SERVE_ARGS") or "{}")
        if not isinstance(args, dict):
            raise TypeError(f"SERVE_ARGS must be a JSON object, got {type(args).__name__}")
        out = json.dumps(describe(os.environ["SERVE_IMPORT_PATH"], args), sort_keys=True)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        return 1
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)
        sys.stdout = real_stdout
    sys.stdout.write(out + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
