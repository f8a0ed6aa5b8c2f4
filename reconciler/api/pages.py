"""The dashboard's views: `GET /` (the page), `GET /dashboard.json` (what the page polls: a small
JSON, with the new HTML only when the page's revision is out of date), and the page's own
script and style sheet, served by the daemon (no CDN, no network).

The HTML of a snapshot is rendered once, by the first request that asks for it after a pass,
and kept with the snapshot; every other request answers from it. Nothing here calls the engine
or git, and a plain `GET /status` never reaches this module (api/fastpath.py answers it).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

from flask import Response, request

from reconciler.api import dashboard
from reconciler.api.replies import json_response
from reconciler.model import Snapshot

HTML_TYPE = "text/html; charset=utf-8"
DEFAULT_POLL_MS = 2000
# The page loads only its own script and style sheet and talks only to its own origin; it may
# not be framed (a framed page could be clicked through).
_SECURITY = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_ASSETS = {
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}


def _asset(name: str) -> bytes:
    return resources.files("reconciler.api").joinpath("static", name).read_bytes()


class Pages:
    """The dashboard's views over `snapshot` (which returns at once, as for /status)."""

    def __init__(
        self,
        *,
        snapshot: Callable[[], Snapshot],
        actions: bool,
        title: str,
        poll_ms: int = DEFAULT_POLL_MS,
    ) -> None:
        self._snapshot, self._actions, self._title, self._poll_ms = (
            snapshot,
            actions,
            title,
            poll_ms,
        )
        self._cache: tuple[Snapshot, str, str] | None = None  # snapshot, live HTML, revision
        self._assets = {path: (_asset(name), kind) for path, (name, kind) in _ASSETS.items()}

    def routes(self) -> list[tuple[str, Callable[[], Response], str]]:
        views: list[tuple[str, Callable[[], Response], str]] = [
            ("/", self.index, "GET"),
            ("/dashboard.json", self.poll, "GET"),
        ]
        views += [(path, self._asset_view(path), "GET") for path in self._assets]
        return views

    def live(self) -> tuple[Snapshot, str, str]:
        snap = self._snapshot()
        cached = self._cache
        if cached is None or cached[0] is not snap:
            html = dashboard.live(snap, actions=self._actions)
            cached = (snap, html, dashboard.rev_of(html))
            self._cache = cached
        return cached

    def index(self) -> Response:
        snap, html, rev = self.live()
        body = dashboard.page(
            snap, html, rev=rev, actions=self._actions, title=self._title, poll_ms=self._poll_ms
        )
        return Response(body, content_type=HTML_TYPE, headers=_SECURITY)

    def poll(self) -> Response:
        snap, html, rev = self.live()
        c = snap.commits
        body = {
            "rev": rev,
            "status": dashboard.overall(snap),
            "applied_commit": c.applied,
            "latest_commit": c.latest,
            "pinned_commit": c.pinned,
            "waiting_behind_pin": c.behind_pin,
            "last_pass_at": snap.loop.last_pass_at,
            "passes": snap.loop.passes,
        }
        if request.args.get("since") != rev:
            body["html"] = html
        response = json_response(body)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _asset_view(self, path: str) -> Callable[[], Response]:
        data, kind = self._assets[path]

        def view() -> Response:
            headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
            return Response(data, content_type=kind, headers=headers)

        view.__name__ = f"asset_{path.strip('/').replace('.', '_')}"
        return view
