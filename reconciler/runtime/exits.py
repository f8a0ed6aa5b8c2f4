"""Replica exits as they happen, from the engine's event stream: a replica that crashes (or is
killed) is replaced by a pass run at once, not at the daemon's next poll nor after three failed
health checks. Serve's controller learns of a dead actor the same way, at once.

One daemon thread reads `GET /events` filtered to this instance's containers dying (the
replicas and the ingress). Exits the reconciler causes itself pass through too (a drained
replica was renamed `...--drain-...` and is skipped; a replica removed at once is not): at worst
a pass more, which finds nothing to do.
When the engine goes away the stream ends; the thread reconnects with backoff, and once it is
back asks for a pass, to catch up with whatever died meanwhile (also when the engine was not up
yet as the daemon started). An engine that answers /events with an error is said once in the
log and asked again at most every 30 s, asking for no pass.

The engine sends `die` before it records the container as exited (Docker 20.10: a pass run at
once still listed it running, settled, and left the dead replica for the next poll). So each
event is first followed by `settle(container id)`, an inspect, which the engine answers only
once the exit is recorded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from reconciler.naming import DRAIN_MARK

log = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0
_HEALTHY_STREAM_S = 30.0  # a stream open this long worked, even without an event


class ExitWatcher:
    """Calls `on_exit()` for each container of the instance (a replica or the ingress) that
    dies, from a daemon thread.
    `events(filters)` opens the engine's event stream: an iterable of decoded events with a
    `close()` that ends it from another thread (the docker SDK's `APIClient.events`).
    Another engine follows other events with `filters` (then `labels` is not used) and keeps
    those `accept(event)` says are its own (the Swarm engine: service and node events)."""

    def __init__(
        self,
        events: Callable[[dict[str, Any]], Any],
        labels: list[str],
        on_exit: Callable[[], None],
        settle: Callable[[str], object] = lambda cid: None,
        *,
        filters: dict[str, Any] | None = None,
        accept: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        self._events, self._on_exit, self._settle = events, on_exit, settle
        self._filters = filters or {"type": "container", "event": "die", "label": labels}
        self._accept = accept
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._missed = False  # deaths may have gone unseen: report once the stream is back
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="replica-exits", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # already closed, or the engine is gone: the thread ends anyway
                log.debug("closing the event stream failed", exc_info=True)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            opened = time.monotonic()
            delivered = self._follow()
            if delivered or time.monotonic() - opened >= _HEALTHY_STREAM_S:
                backoff = 1.0  # a stream that worked: reconnect soon
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def _follow(self) -> bool:
        """Open the stream and report from it until it ends; True if it delivered an event."""
        try:
            stream = self._events(self._filters)
        except Exception as exc:  # the engine is unreachable: deaths now go unseen
            self._missed = True
            log.debug("replica exit events: %s; retrying", exc)
            return False
        delivered = False
        try:
            with self._lock:
                if self._stop.is_set():
                    stream.close()
                    return False
                self._stream = stream
            if self._missed:
                self._notify()  # what died while the stream was down
                self._missed = False
            for event in stream:
                delivered = True
                self._on_event(event)
            self._missed = True  # the engine ended the stream (a restart): reopen, catch up
        except Exception as exc:  # an error answer (a proxy refusing /events, ...)
            if not self._warned and not self._stop.is_set():
                log.warning(
                    "cannot follow the engine's events (%s): a replica that exits is replaced "
                    "at the next poll or after its health checks fail",
                    exc,
                )
                self._warned = True
        return delivered

    def _on_event(self, event: dict[str, Any]) -> None:
        if self._accept is not None:
            if self._accept(event):
                self._notify()
            return
        actor = event.get("Actor") or {}
        if DRAIN_MARK in str((actor.get("Attributes") or {}).get("name", "")):
            return
        self._settled(str(actor.get("ID") or event.get("id") or ""))
        self._notify()

    def _settled(self, cid: str) -> None:
        if self._stop.is_set():
            return
        try:
            self._settle(cid)
        except Exception:  # gone already, or the engine with it: either way, settled
            log.debug("inspecting exited container %s failed", cid, exc_info=True)

    def _notify(self) -> None:
        if self._stop.is_set():
            return
        try:
            self._on_exit()
        except Exception:
            log.exception("the replica-exit callback failed")
