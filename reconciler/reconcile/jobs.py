"""One commit being prepared off the pass (checkout, load and validate, then fetch and build): its
result when done, what it is doing meanwhile, and what it is prepared for. The target
(target.py) runs one job at a time, in the background for the daemon or inline for `--once`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from reconciler.model import HttpOptions, ServeConfig
from reconciler.reconcile.pinning import PinRequest
from reconciler.records import CommitInfo

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

HEAD = "head"  # the branch head, to deploy
RESTORE = "restore"  # the commit applied before a restart: adopt it, record nothing
PIN = "pin"  # a commit to pin, for the request it carries

_NOTHING = ServeConfig("single", HttpOptions(), ())


@dataclass(frozen=True)
class Ready:
    config: ServeConfig


class Job:
    """Call it (in a worker or inline) once `run` is set; `future` holds the result."""

    def __init__(self, commit: str, kind: str, request: PinRequest | None = None) -> None:
        self.commit = commit
        self.kind = kind
        self.request = request
        self.progress = ""
        self.info = CommitInfo()  # what git says about the commit, read while preparing it
        self.run: Callable[[Progress], Ready] = lambda progress: Ready(_NOTHING)
        self.future: Future[Ready] = Future()

    def __call__(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            self.future.set_result(self.run(self._report))
        except BaseException as exc:  # handed to the pass, which classifies it
            self.future.set_exception(exc)

    def _report(self, text: str) -> None:
        self.progress = text
        log.info("commit %s: %s", self.commit[:12], text)
