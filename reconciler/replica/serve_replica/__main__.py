"""Entry point: `python3 -m serve_replica` (see the package docstring for the contract)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from types import FrameType

from .replica import Replica
from .request import last_line
from .server import ReplicaServer
from .settings import Settings
from .sync import LoopThread

PY_MODULES_DIR = "/app/py_modules"


def _setup_path() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path[:1]:
        sys.path.insert(0, cwd)
    if os.path.isdir(PY_MODULES_DIR):
        sys.path.insert(1, PY_MODULES_DIR)


def _exit(code: int) -> None:
    """Exit without interpreter teardown, so `__del__` runs once and stray threads cannot block."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _load_secret_env() -> None:
    """Secret env values come in a file the engine copied in (not in the container's Env, which
    `docker inspect` shows); they join the environment before the user's code is imported."""
    path = os.environ.pop("SERVE_SECRET_ENV_FILE", "")
    if path:
        with open(path, encoding="utf-8") as f:
            os.environ.update(json.load(f))


def main() -> None:
    _load_secret_env()
    settings = Settings.from_env(os.environ)
    _setup_path()
    replica = Replica(settings, LoopThread())
    server = ReplicaServer(settings.port, replica)  # listening before __init__ runs
    threading.Thread(target=server.serve_forever, name="serve-http", daemon=True).start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not replica.initialized:
            _exit(0)  # a replica still starting is stopped at once, as Serve does
        replica.draining = True
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        replica.initialize()
    except BaseException as exc:
        replica.error = last_line(exc)
        traceback.print_exc()  # its last line is the user's `ExcType: message`
        _exit(1)
    print(f"[serve] {settings.app}/{settings.deployment}#{settings.replica} ready", flush=True)
    while not stop.wait(1.0):
        pass
    replica.drain()
    try:
        replica.call_del()
    except Exception:
        traceback.print_exc(file=sys.stdout)
    server.shutdown()
    _exit(0)


if __name__ == "__main__":
    main()
