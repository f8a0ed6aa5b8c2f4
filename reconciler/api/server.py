"""A production WSGI server (waitress) for the API, running in a background thread of the daemon.

Waitress buffers a request's body before the app sees it, so its own cap on bodies is the
outer bound of memory a request can take; the app's webhook cap (a JSON 413) sits inside it.

Waitress reads requests in its loop thread and hands each to a worker thread, which hands the
response back to the loop to send: three thread wake-ups a request, and on a host kept busy by a
rollout each is a wait for a CPU (a plain GET /status at 500/s during a 100-replica rollout had
its p99 doubled by them). So when the app's outer layer is the /status fast path, the requests it
answers from bytes it already holds (`StatusFastPath.answers`) are served by the loop thread
itself, right after the poll that read them; every other request goes to a worker as before.
(The first of them after a pass renders the new snapshot's body there: a JSON or YAML dump of a
few kilobytes.)
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.server import create_server
from waitress.task import ThreadedTaskDispatcher

from reconciler.api.fastpath import StatusFastPath

log = logging.getLogger(__name__)

_STOP_TIMEOUT_S = 5.0
_BODY_CAP_FACTOR = 4  # waitress refuses bodies past this many times the webhook cap
_MIN_BODY_CAP = 1 << 20
# A connection with this much output not yet sent has its next request served by a worker: the
# loop thread must never wait for its own flushing (waitress blocks a writer at 16 MiB queued).
_INLINE_OUTBUF_LIMIT = 1 << 20


class ApiServer:
    """Serve `app` on host:port (port 0 picks a free port; `port` tells which) until `stop()`."""

    def __init__(
        self,
        app: Flask,
        host: str = "127.0.0.1",
        port: int = 8265,
        threads: int = 8,
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
        fast = self._app.wsgi_app
        dispatcher = _InlineDispatcher(fast.answers if isinstance(fast, StatusFastPath) else _never)
        dispatcher.set_thread_count(self._threads)
        self._server = create_server(
            self._app,
            _dispatcher=dispatcher,
            host=self._host,
            port=self._port,
            threads=self._threads,
            ident="serve-reconciler",
            clear_untrusted_proxy_headers=True,
            max_request_body_size=max(_MIN_BODY_CAP, webhook_cap * _BODY_CAP_FACTOR),
        )
        _quiet_trigger_in_loop(self._server, dispatcher)
        self._thread = threading.Thread(
            target=_serve, args=(self._server, dispatcher), name="api-server", daemon=True
        )
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


InlinePredicate = Callable[[str, str, str, str], bool]


def _never(method: str, path: str, query: str, accept: str) -> bool:
    return False


class _InlineDispatcher(ThreadedTaskDispatcher):
    """Waitress's worker pool, except for the requests `inline` picks: those wait in `pending`
    for the loop thread, which serves them after each poll (`_serve`)."""

    def __init__(self, inline: InlinePredicate) -> None:
        super().__init__()
        self._inline = inline
        self.pending: deque[Any] = deque()  # channels; deque appends and pops are thread-safe
        self.loop_thread: int | None = None

    def add_task(self, task: Any) -> None:
        # Called with the channel's requests lock held (from the loop thread as a request
        # completes, or from a worker that finished the request before a pipelined one).
        request = task.requests[0]
        if (
            request.error
            or task.total_outbufs_len > _INLINE_OUTBUF_LIMIT
            or not self._inline(
                request.command, request.path, request.query, request.headers.get("ACCEPT", "")
            )
        ):
            super().add_task(task)
            return
        self.pending.append(task)
        if threading.get_ident() != self.loop_thread:
            task.server.pull_trigger()  # wake the loop out of its poll

    def serve_pending(self) -> None:
        while self.pending:
            channel = self.pending.popleft()
            if not channel.requests:  # closed meanwhile: nothing to answer
                continue
            try:
                channel.service()  # writes into the channel's buffer; the loop sends it
            except Exception:  # service() reports the app's errors itself; this is a bug
                log.exception("serving a request in the API's loop thread failed")


def _quiet_trigger_in_loop(server: Any, dispatcher: _InlineDispatcher) -> None:
    """A channel pulls the server's trigger (a byte into a pipe only the loop reads) when it has
    served a request, to wake the loop. From the loop thread itself that is needless (it polls
    next, and a channel with output is writable) and unsafe: inline requests served in one go
    could fill the pipe, and the loop would block writing to a pipe only it drains."""
    wake = server.pull_trigger

    def pull_trigger() -> None:
        if threading.get_ident() != dispatcher.loop_thread:
            wake()

    server.pull_trigger = pull_trigger


def _serve(server: Any, dispatcher: _InlineDispatcher) -> None:
    """waitress's `server.run()` (one listening socket), serving the inline requests after each
    poll."""
    dispatcher.loop_thread = threading.get_ident()
    poll = wasyncore.poll2 if server.adj.asyncore_use_poll else wasyncore.poll
    timeout = server.adj.asyncore_loop_timeout
    try:
        while server._map:
            poll(timeout, server._map)
            dispatcher.serve_pending()
    except (SystemExit, KeyboardInterrupt):
        dispatcher.shutdown()


def _in_loop(server: Any, thunk: Callable[[], None]) -> None:
    # OSError: the loop woke for another reason, ran the thunk and closed the trigger before
    # our wake-up byte was written; the work is done.
    with contextlib.suppress(OSError):
        server.trigger.pull_trigger(thunk)


def _busy(server: Any) -> bool:
    dispatcher = server.task_dispatcher
    return bool(dispatcher.active_count or dispatcher.queue or dispatcher.pending)


def _close_all(server: Any) -> None:
    for dispatcher in list(server._map.values()):
        dispatcher.close()
