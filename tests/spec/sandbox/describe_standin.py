"""Stand-in for `python3 -m serve_replica.describe` (the replica runtime's contract), used by the
sandbox tests while the runtime does not ship it: read SERVE_IMPORT_PATH and SERVE_ARGS, import
the module as a replica would, build the application and print one line of JSON describing it;
on failure, a traceback (last line `ExcType: message`) and exit 1. Standard library only."""

from __future__ import annotations

import json
import os
import sys
import traceback

PY_MODULES_DIR = "/app/py_modules"


def _plain(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return {"__unserializable__": repr(value)}


def _describe(name, node):
    target = node.deployment.func_or_class
    is_class = isinstance(target, type)
    methods = sorted(m for m in dir(target) if is_class and not m.startswith("_"))
    return {
        "name": name,
        "class_name": getattr(target, "__name__", name),
        "is_function": not is_class,
        "options": {k: _plain(v) for k, v in node.deployment._options.items()},
        "methods": methods,
        "has_reconfigure": is_class and hasattr(target, "reconfigure"),
        "has_check_health": is_class and hasattr(target, "check_health"),
        "asgi_ingress": False,
        "multiplexed": False,
    }


def main() -> None:
    sys.path.insert(0, os.getcwd())
    if os.path.isdir(PY_MODULES_DIR):
        sys.path.insert(1, PY_MODULES_DIR)
    try:
        from serve_replica.graph import import_target, name_nodes, to_application

        target = import_target(os.environ["SERVE_IMPORT_PATH"])
        app = to_application(target, json.loads(os.environ.get("SERVE_ARGS") or "{}"))
        names = name_nodes(app)
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        os._exit(1)
    answer = {
        "ingress": names[id(app)][0],
        "deployments": [_describe(name, node) for name, node in names.values()],
    }
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
