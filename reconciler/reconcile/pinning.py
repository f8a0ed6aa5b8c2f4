"""Where the API's threads leave pin, unpin and rollback requests for the pass, and wait for the
answers. The target (target.py) is changed by the pass alone: it takes the requests at the start
of each refresh and answers each one when it is done (at once for an unpin, once its preparation
is judged for a pin). A caller that cannot wait longer gets "preparing" and can ask again.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.pins import PinAnswer, PinState, short

DEFAULT_WAIT_S = 20.0  # how long an API request waits for its answer before "preparing"


class Ask(enum.StrEnum):
    PIN = "pin"
    UNPIN = "unpin"
    ROLLBACK = "rollback"


@dataclass
class PinRequest:
    """One request; `commit` is the full id (a rollback's is chosen by the pass)."""

    ask: Ask
    commit: str | None = None
    reason: str = ""
    future: Future[PinAnswer] = field(default_factory=Future)

    def answer(self, answer: PinAnswer) -> None:
        if not self.future.done():
            self.future.set_result(answer)


class PinDesk:
    """The requests waiting for the pass, and the answer to the last pin or rollback (for
    GET /pin). Thread-safe."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._queue: list[PinRequest] = []
        self._last: PinAnswer | None = None

    def submit(self, request: PinRequest) -> Future[PinAnswer]:
        with self._lock:
            self._queue.append(request)
        if request.ask is not Ask.UNPIN:
            self.note(PinAnswer(PinState.PREPARING, request.commit, _asked(request)))
        request.future.add_done_callback(self._noted(request))
        self._wake()
        return request.future

    def take(self) -> list[PinRequest]:
        with self._lock:
            taken, self._queue = self._queue, []
        return taken

    def note(self, answer: PinAnswer) -> None:
        with self._lock:
            self._last = answer

    @property
    def last(self) -> PinAnswer | None:
        with self._lock:
            return self._last

    def _noted(self, request: PinRequest) -> Callable[[Future[PinAnswer]], None]:
        def done(future: Future[PinAnswer]) -> None:
            if request.ask is not Ask.UNPIN:
                self.note(future.result())

        return done


def wait(future: Future[PinAnswer], commit: str | None, wait_s: float) -> PinAnswer:
    """The answer if it comes within `wait_s`, else "preparing"."""
    try:
        return future.result(timeout=max(0.0, wait_s))
    except FutureTimeout:
        text = f"commit {short(commit)} is being prepared; GET /pin says when it is pinned"
        if commit is None:
            text = "the request waits for the reconcile loop; GET /pin says what became of it"
        return PinAnswer(PinState.PREPARING, commit, text)


def _asked(request: PinRequest) -> str:
    if request.ask is Ask.ROLLBACK:
        return "rollback requested"
    return f"pin of commit {short(request.commit)} requested"


class Pinnable(Protocol):
    """The target's side (GitTarget): requests that the pass answers."""

    def submit_pin(self, rev: str, reason: str = "") -> Future[PinAnswer]: ...
    def submit_unpin(self) -> Future[PinAnswer]: ...
    def submit_rollback(self) -> Future[PinAnswer]: ...
    def last_pin_answer(self) -> PinAnswer | None: ...


class PinControl:
    """What the API's handlers call: each request waits up to `wait_s` for its answer."""

    def __init__(self, target: Pinnable, wait_s: float = DEFAULT_WAIT_S) -> None:
        self._target, self._wait_s = target, wait_s

    def pin(self, rev: str, reason: str = "") -> PinAnswer:
        future = self._target.submit_pin(rev, reason)
        return wait(future, rev, self._wait_s)

    def unpin(self) -> PinAnswer:
        return wait(self._target.submit_unpin(), None, self._wait_s)

    def rollback(self) -> PinAnswer:
        return wait(self._target.submit_rollback(), None, self._wait_s)

    def last(self) -> PinAnswer | None:
        return self._target.last_pin_answer()
