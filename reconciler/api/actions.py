"""The endpoints that change state, all behind the API token (auth.py): `POST /pin {commit}`,
`DELETE /pin`, `POST /rollback`; and `GET /pin`, open like every read. The target answers each
request from its pass (reconcile/pinning.py); a handler waits a bounded time for that answer, and
a moment more for the snapshot to show it, so a read right after a write agrees with it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, Protocol

from flask import Response, request

from reconciler.api.auth import Guard
from reconciler.api.replies import error_response, json_response
from reconciler.model import Snapshot
from reconciler.pins import PinAnswer, PinState

MAX_BODY_BYTES = 16 * 1024
MAX_REASON = 200
SHOWN_WITHIN_S = 2.0  # how long a write waits for the next snapshot to show it

_STATUS = {
    PinState.PINNED: 200,
    PinState.UNPINNED: 200,
    PinState.NOT_PINNED: 200,
    PinState.PREPARING: 202,
    PinState.UNKNOWN: 404,
    PinState.NO_PREVIOUS: 409,
    PinState.SUPERSEDED: 409,
    PinState.REFUSED: 422,
}


class PinActions(Protocol):
    """What the daemon offers (reconcile.pinning.PinControl)."""

    def pin(self, rev: str, reason: str = "") -> PinAnswer: ...
    def unpin(self) -> PinAnswer: ...
    def rollback(self) -> PinAnswer: ...
    def last(self) -> PinAnswer | None: ...


def answer_body(answer: PinAnswer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": answer.state.value,
        "commit": answer.commit,
        "message": answer.message,
        "errors": list(answer.errors),
    }
    if _STATUS[answer.state] >= 400:
        body["error"] = answer.message
    return body


def pin_body(snap: Snapshot, last: PinAnswer | None) -> dict[str, Any]:
    c = snap.commits
    return {
        "pinned_commit": c.pinned,
        "pinned_at": c.pinned_at if c.pinned else None,
        "pin_reason": c.pin_reason if c.pinned else None,
        "latest_commit": c.latest,
        "applied_commit": c.applied,
        "waiting_behind_pin": c.behind_pin,
        "last_request": answer_body(last) if last is not None else None,
    }


class Actions:
    def __init__(
        self, *, pins: PinActions | None, guard: Guard, snapshot: Callable[[], Snapshot]
    ) -> None:
        self._pins, self._guard, self._snapshot = pins, guard, snapshot

    def routes(self) -> list[tuple[str, Callable[[], Response], str]]:
        return [
            ("/pin", self.show, "GET"),
            ("/pin", self.pin, "POST"),
            ("/pin", self.unpin, "DELETE"),
            ("/rollback", self.rollback, "POST"),
        ]

    def show(self) -> Response:
        last = self._pins.last() if self._pins is not None else None
        return json_response(pin_body(self._snapshot(), last))

    def pin(self) -> Response:
        refused = self._refusal()
        if refused is not None:
            return refused
        body = _json_body()
        if isinstance(body, Response):
            return body
        commit, reason = body.get("commit"), body.get("reason", "")
        if not isinstance(commit, str) or not commit.strip() or len(commit) > 100:
            return error_response(400, 'the body must be {"commit": "<commit id>"}')
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            return error_response(400, f"reason must be text of {MAX_REASON} characters at most")
        assert self._pins is not None
        return self._answer(self._pins.pin(commit.strip(), reason.strip()))

    def unpin(self) -> Response:
        refused = self._refusal()
        if refused is not None:
            return refused
        assert self._pins is not None
        return self._answer(self._pins.unpin())

    def rollback(self) -> Response:
        refused = self._refusal()
        if refused is not None:
            return refused
        assert self._pins is not None
        return self._answer(self._pins.rollback())

    def _refusal(self) -> Response | None:
        refused = self._guard.refusal()
        if refused is None and self._pins is None:
            return error_response(403, "this reconciler does not follow a branch: nothing to pin")
        return refused

    def _answer(self, answer: PinAnswer) -> Response:
        if answer.state in (PinState.PINNED, PinState.UNPINNED):
            self._await_snapshot(answer)
        return json_response(answer_body(answer), _STATUS[answer.state])

    def _await_snapshot(self, answer: PinAnswer) -> None:
        wanted = answer.commit if answer.state is PinState.PINNED else None
        pause = threading.Event()
        for _ in range(int(SHOWN_WITHIN_S / 0.02)):
            if self._snapshot().commits.pinned == wanted:
                return
            pause.wait(0.02)


def _json_body() -> dict[str, Any] | Response:
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return error_response(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = request.get_data(cache=False)[: MAX_BODY_BYTES + 1]
    if len(raw) > MAX_BODY_BYTES:
        return error_response(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return error_response(400, "the body is not JSON")
    if not isinstance(body, dict):
        return error_response(400, "the body must be a JSON object")
    return body
