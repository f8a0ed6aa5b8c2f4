"""The Flask app factory. Handlers only read: a snapshot the reconcile loop wrote at the end of
its last pass, the deploy history, the health verdict and the metrics. None of them calls git or
Docker, so a slow engine never slows `/status`. `POST /webhook` only asks the loop to poll now;
pin, unpin and rollback (api/actions.py, behind the API token) leave a request for the loop and
wait for its answer. The dashboard (`GET /`, api/pages.py) renders the same snapshot as HTML.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest, HTTPException, MethodNotAllowed

from reconciler.api import shapes
from reconciler.api.actions import Actions, PinActions
from reconciler.api.auth import Guard
from reconciler.api.fastpath import StatusFastPath
from reconciler.api.media import JSON_TYPE, YAML_TYPE, YAML_TYPES, content_type
from reconciler.api.pages import DEFAULT_POLL_MS, Pages
from reconciler.api.replies import error_response, json_response, render, render_text
from reconciler.metrics import Metrics
from reconciler.model import HistoryEntry, Snapshot
from reconciler.spec.yamlout import dump_yaml
from reconciler.webhook import WebhookVerdict, verify_and_parse

log = logging.getLogger(__name__)

DEFAULT_HISTORY, MAX_HISTORY = 20, 1000
ENDPOINTS = (
    "/",
    "/status",
    "/config",
    "/history",
    "/healthz",
    "/metrics",
    "/webhook",
    "/pin",
    "/rollback",
    "/dashboard.json",
    "/openapi.json",
)


class _JSON(DefaultJSONProvider):
    sort_keys = False  # keep Serve's field order: name, app_status, deployment_statuses, ...


class _App(Flask):
    json_provider_class = _JSON


def create_app(
    *,
    snapshot: Callable[[], Snapshot],
    history: Callable[[int], list[HistoryEntry]],
    trigger: Callable[[], None],
    health: Callable[[], tuple[bool, str]],
    metrics: Metrics,
    branch: str,
    webhook_secret: str | None,
    max_webhook_bytes: int = 1 << 20,
    pins: PinActions | None = None,
    api_token: str | None = None,
    title: str = "serve-reconciler",
    poll_ms: int = DEFAULT_POLL_MS,
) -> Flask:
    """Build the API app around read-only views of the daemon's state. `snapshot` must return at
    once (it reads an attribute the pass replaces): a plain GET /status calls it from the WSGI
    server's loop thread (api/server.py), where a wait would hold every connection. `pins` and
    `api_token` turn on pin, unpin and rollback (without a token they answer 403)."""
    app = _App("reconciler.api")
    app.config["MAX_WEBHOOK_BYTES"] = max_webhook_bytes
    handlers = _Handlers(
        snapshot=snapshot,
        history=history,
        trigger=trigger,
        health=health,
        metrics=metrics,
        branch=branch,
        secret=webhook_secret or None,
        max_bytes=max_webhook_bytes,
        openapi=_openapi_or_none(),
    )
    guard = Guard(api_token)
    actions = Actions(pins=pins, guard=guard, snapshot=snapshot)
    pages = Pages(snapshot=snapshot, actions=guard.enabled and pins is not None, title=title,
                  poll_ms=poll_ms)  # fmt: skip
    for path, view, method in handlers.routes() + actions.routes() + pages.routes():
        app.add_url_rule(
            path,
            endpoint=f"{method} {path}",
            view_func=view,
            methods=[method],
            provide_automatic_options=False,
        )
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    app.wsgi_app = StatusFastPath(app.wsgi_app, handlers.status_body)  # type: ignore[method-assign]
    return app


def load_openapi() -> dict[str, Any]:
    """The OpenAPI document shipped beside the package."""
    text = resources.files("reconciler").joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def _openapi_or_none() -> dict[str, Any] | None:
    # A packaging slip (the JSON left out of a wheel) must cost the document, not the daemon.
    try:
        return load_openapi()
    except (OSError, ValueError):
        log.exception("the OpenAPI document cannot be read; GET /openapi.json will fail")
        return None


class _Handlers:
    """The views, holding the read-only callables they are given (no globals)."""

    def __init__(
        self,
        *,
        snapshot: Callable[[], Snapshot],
        history: Callable[[int], list[HistoryEntry]],
        trigger: Callable[[], None],
        health: Callable[[], tuple[bool, str]],
        metrics: Metrics,
        branch: str,
        secret: str | None,
        max_bytes: int,
        openapi: dict[str, Any] | None,
    ) -> None:
        self._snapshot, self._history, self._trigger = snapshot, history, trigger
        self._health, self._metrics, self._branch = health, metrics, branch
        self._secret, self._max_bytes, self._openapi = secret, max_bytes, openapi
        self._refusals = _ThrottledLog(interval_s=10.0)
        # fmt -> (snapshot, encoded body): a snapshot is immutable and replaced once per pass,
        # so under load /status renders each one once instead of once per request.
        self._status_cache: dict[str, tuple[Snapshot, bytes]] = {}

    def routes(self) -> list[tuple[str, Callable[[], Response], str]]:
        return [
            ("/status", self.status, "GET"),
            ("/config", self.config, "GET"),
            ("/history", self.history, "GET"),
            ("/healthz", self.healthz, "GET"),
            ("/metrics", self.metrics, "GET"),
            ("/webhook", self.webhook, "POST"),
            ("/openapi.json", self.openapi, "GET"),
        ]

    def status(self) -> Response:
        fmt = wanted_format()
        return Response(self.status_body(fmt), content_type=content_type(fmt))

    def status_body(self, fmt: str) -> bytes:
        """GET /status encoded as `fmt`, rendered once per snapshot (also the fast path's)."""
        snap = self._snapshot()
        cached = self._status_cache.get(fmt)
        if cached is None or cached[0] is not snap:
            cached = (snap, render_text(shapes.status_body(snap), fmt).encode("utf-8"))
            self._status_cache[fmt] = cached
        return cached[1]

    def config(self) -> Response:
        fmt = wanted_format()
        snap = self._snapshot()
        commits = snap.commits
        if commits.applied is None or commits.applied_document is None:
            return json_response(shapes.not_applied_body(snap), 404)
        headers = {"X-Serve-Commit": commits.applied}
        document = shapes.plain(commits.applied_document)
        if fmt == "yaml":
            text = f"# commit {commits.applied}\n" + dump_yaml(document)
            return Response(text, content_type=YAML_TYPE, headers=headers)
        body = {"commit": commits.applied, "config": document}
        response = json_response(body)
        response.headers.update(headers)
        return response

    def history(self) -> Response:
        fmt = wanted_format()
        limit = _history_limit()
        return render(shapes.history_body(self._history(limit)[:limit]), fmt)

    def healthz(self) -> Response:
        try:
            ok, message = self._health()
        except Exception as exc:  # a broken health probe means unhealthy, not a 500
            log.exception("health check raised")
            ok, message = False, f"health check failed: {type(exc).__name__}"
        if ok:
            return json_response({"status": "ok", "message": message})
        return json_response({"status": "unhealthy", "message": message}, 503)

    def metrics(self) -> Response:
        body, content_type = self._metrics.render()
        return Response(body, content_type=content_type)

    def openapi(self) -> Response:
        if self._openapi is None:
            return error_response(500, "the OpenAPI document is missing from this installation")
        return json_response(self._openapi)

    def webhook(self) -> Response:
        if self._secret is None:
            return error_response(
                404,
                "the webhook is not configured: start the reconciler "
                "with a webhook secret to enable it",
            )
        body = _capped_body(self._max_bytes)
        if body is None:
            self._metrics.webhook("too_large")
            return error_response(413, f"the body is larger than {self._max_bytes} bytes")
        verdict = verify_and_parse(
            dict(request.headers.items()), body, secret=self._secret, branch=self._branch
        )
        if verdict.status == 401:
            self._refusals.warning(
                "webhook refused from %s: %s", request.remote_addr, verdict.message
            )
        if verdict.trigger:
            self._trigger()
        self._metrics.webhook(_webhook_result(verdict))
        return _verdict_response(verdict)


class _ThrottledLog:
    """At most one warning per interval, so a flood of bad requests cannot flood the log; the
    next warning says how many were left out."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._next_at = 0.0
        self._skipped = 0

    def warning(self, message: str, *args: object) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._next_at:
                self._skipped += 1
                return
            skipped, self._skipped, self._next_at = self._skipped, 0, now + self._interval_s
        suffix = f" ({skipped} more refused before this one, not logged)" if skipped else ""
        log.warning(message + suffix, *args)


def _capped_body(max_bytes: int) -> bytes | None:
    """The request body, or None when it is larger than `max_bytes` (read no further then)."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        return None
    body = request.stream.read(max_bytes + 1)
    return None if len(body) > max_bytes else body


def _webhook_result(verdict: WebhookVerdict) -> str:
    if verdict.trigger:
        return "triggered"
    return {200: "ping", 202: "ignored", 401: "rejected"}.get(verdict.status, "malformed")


def _verdict_response(verdict: WebhookVerdict) -> Response:
    if verdict.status >= 400:
        return error_response(verdict.status, verdict.message)
    status = "triggered" if verdict.trigger else ("ignored" if verdict.status == 202 else "ok")
    return json_response({"status": status, "message": verdict.message}, verdict.status)


def wanted_format() -> str:
    """ "json" or "yaml", from `?format=` first, else the Accept header (JSON by default)."""
    fmt = request.args.get("format")
    if fmt is not None:
        if fmt.lower() not in ("json", "yaml"):
            raise BadRequest(f"format must be json or yaml, not {fmt[:40]!r}")
        return fmt.lower()
    best = request.accept_mimetypes.best_match((JSON_TYPE, *YAML_TYPES), default=JSON_TYPE)
    return "yaml" if best in YAML_TYPES else "json"


def _history_limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_HISTORY
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_HISTORY:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_HISTORY}")
    return int(raw)


def _http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    if code == 404:
        response = error_response(
            404, f"no such endpoint: {request.path[:200]}", endpoints=list(ENDPOINTS)
        )
    elif isinstance(exc, MethodNotAllowed):
        allowed = sorted(exc.valid_methods or [])
        response = error_response(
            405, f"method {request.method} is not allowed on {request.path[:200]}", allowed=allowed
        )
        response.headers["Allow"] = ", ".join(allowed)
    else:
        response = error_response(code, exc.description or exc.name)
    return response


def _internal_error(exc: Exception) -> Response:
    # Last resort: log the traceback here, never send it.
    log.exception("unhandled error in %s %s", request.method, request.path[:200])
    return error_response(500, "internal error; see the reconciler's log")
