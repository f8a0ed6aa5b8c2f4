"""A production WSGI server (waitress) for the API, running in a background thread of the daemon.

Waitress buffers a request's body before the app sees it, so its own cap on bodies is the
outer bound of memory a request can take; the app's webhook cap (a JSON 413) sits inside it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.server import create_server

_STOP_TIMEOUT_S = 5.0
_BODY_CAP_FACTOR = 4  # waitress refuses bodies past this many times the webhook cap
_MIN_BODY_CAP = 1 << 20


class ApiServer:
    """Serve `app` on host:port (port 0 picks a free port; `port` tells which) until `stop()`."""

    def __init__(
        self, app: Flask, host: str = "127.0.0.1", port: int = 8265, threads: int = 8
    ) -> None:
        self._app, self._host, self._port, self._threads = app, host, port, threads
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (only known after `start()` when 0 was asked for)."""
        return int(self._server.effective_port) if self._server is not None else self._port

    def start(self) -> None:
        """Bind now (so a taken port fails here, in the caller) and serve in a daemon thread."""
        if self._server is not None:
            return
        webhook_cap = int(self._app.config.get("MAX_WEBHOOK_BYTES", _MIN_BODY_CAP))
        self._server = create_server(
            self._app,
            host=self._host,
            port=self._port,
            threads=self._threads,
            ident="serve-reconciler",
            clear_untrusted_proxy_headers=True,
            max_request_body_size=max(_MIN_BODY_CAP, webhook_cap * _BODY_CAP_FACTOR),
        )
        self._thread = threading.Thread(target=self._server.run, name="api-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to a few seconds), then close every
        connection and wait for the workers."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        # Sockets are closed from the loop's own thread: asyncore maps are not thread-safe.
        _in_loop(server, lambda: wasyncore.dispatcher.close(server))
        while _busy(server) and time.monotonic() < deadline:
            time.sleep(0.01)
        _in_loop(server, lambda: _close_all(server))
        thread.join(max(0.1, deadline - time.monotonic()))
        server.task_dispatcher.shutdown(timeout=_STOP_TIMEOUT_S)
        self._server, self._thread = None, None


def _in_loop(server: Any, thunk: Callable[[], None]) -> None:
    # OSError: the loop woke for another reason, ran the thunk and closed the trigger before
    # our wake-up byte was written; the work is done.
    with contextlib.suppress(OSError):
        server.trigger.pull_trigger(thunk)


def _busy(server: Any) -> bool:
    dispatcher = server.task_dispatcher
    return bool(dispatcher.active_count or dispatcher.queue)


def _close_all(server: Any) -> None:
    for dispatcher in list(server._map.values()):
        dispatcher.close()
