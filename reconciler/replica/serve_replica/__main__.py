"""Entry point: `python3 -m serve_replica` (see the package docstring for the contract)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from . import handle, logs, protocol, transport
from . import loop as runtime_loop
from .context import new_unique_id
from .replica import Replica
from .request import last_line
from .server import Dispatcher
from .settings import Settings
from .startup import load_secret_env, setup_path


def _exit(code: int) -> None:
    """Exit without interpreter teardown, so `__del__` runs once and stray threads cannot block."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def run(settings: Settings, signals: list[Callable[[], None]]) -> None:
    loop = asyncio.get_running_loop()
    runtime_loop.install(loop, workers=max(8, settings.max_ongoing_requests + 4))
    handle.set_router(transport.Router(settings.router_url, settings.control_token))
    replica = Replica(settings, new_unique_id())
    logs.setup_replica(settings.app, settings.deployment, replica.replica_id)
    # listening before __init__ runs, so /-/healthz can say it is still starting
    server = await protocol.serve(Dispatcher(replica), settings.port)
    stop = asyncio.Event()

    def on_signal() -> None:
        if not replica.initialized:
            _exit(0)  # a replica still starting is stopped at once, as Serve does
        replica.draining = True
        stop.set()

    signals.append(on_signal)
    try:
        await replica.initialize()
    except BaseException as exc:
        replica.error = last_line(exc)
        traceback.print_exc()  # its last line is the user's `ExcType: message`
        _exit(1)
    print(f"[serve] {settings.app}/{settings.deployment}#{settings.replica} ready", flush=True)
    await stop.wait()
    await replica.drain()
    try:
        await replica.shutdown()
    except Exception:
        traceback.print_exc(file=sys.stdout)
    server.close()
    _exit(0)


def _serve(loop: asyncio.AbstractEventLoop, settings: Settings, signals: list[Any]) -> None:
    try:
        loop.run_until_complete(run(settings, signals))
    except BaseException:
        traceback.print_exc()
        _exit(1)


def main() -> None:
    load_secret_env()
    settings = Settings.from_env(os.environ)
    setup_path()
    # The loop runs on a thread of its own; the main thread takes SIGTERM/SIGINT (only it can)
    # and runs the user's import and constructor, as a Ray actor's main thread does.
    loop = asyncio.new_event_loop()
    signals: list[Callable[[], None]] = []

    def on_signal(signum: int, frame: Any) -> None:
        for handler in signals:
            loop.call_soon_threadsafe(handler)
        if not signals:
            _exit(0)  # not even listening yet

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    threading.Thread(target=_serve, args=(loop, settings, signals), name="serve-loop",
                     daemon=True).start()  # fmt: skip
    runtime_loop.main_thread().serve_forever()


if __name__ == "__main__":
    main()
