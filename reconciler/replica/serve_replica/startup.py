"""What a replica does before it builds its deployment, shared with describe mode: the import
path (working_dir first, then py_modules), secret env, and building the application graph."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from .api import Application
from .graph import import_target, to_application
from .web import missing_package_message

PY_MODULES_DIR = "/app/py_modules"


def setup_path() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path[:1]:
        sys.path.insert(0, cwd)
    if os.path.isdir(PY_MODULES_DIR):
        sys.path.insert(1, PY_MODULES_DIR)


def load_secret_env() -> None:
    """Secret env values come in a file the engine copied in (not in the container's Env, which
    `docker inspect` shows); they join the environment before the user's code is imported."""
    path = os.environ.pop("SERVE_SECRET_ENV_FILE", "")
    if path:
        with open(path, encoding="utf-8") as f:
            os.environ.update(json.load(f))


def build_application(import_path: str, args: dict[str, Any]) -> Application:
    """Import the user's module (its driver calls are no-ops here) and build the graph. A
    missing web package is named with where to get it."""
    try:
        target = import_target(import_path)
    except ModuleNotFoundError as exc:
        hint = missing_package_message(exc.name or "")
        if not hint:
            raise
        raise ModuleNotFoundError(f"{exc}: {hint}", name=exc.name) from exc
    return to_application(target, args)
