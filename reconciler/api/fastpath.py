"""The hot path: a plain `GET /status` answered before Flask, from bytes encoded once per snapshot.

Dashboards, load balancers and `serve status` loops poll /status; under a rollout on a small host
every millisecond of CPU a request takes is taken from the rollout (and waits behind it). Flask's
request context, routing and content negotiation cost about as much again as the WSGI server
itself, so the plain forms (no query or `?format=json|yaml`, and an Accept header that is absent,
`*/*` or exactly one of the types we serve) are answered here. Anything else, including every
error, goes to the Flask app, which gives the same answer for the plain forms (a test checks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reconciler.api.media import JSON_TYPE, YAML_TYPES, content_type

_ACCEPTED = {"": "json", "*/*": "json", JSON_TYPE: "json", **dict.fromkeys(YAML_TYPES, "yaml")}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def plain_status_format(query: str, accept: str) -> str | None:
    """'json' or 'yaml' when a GET /status with this query and Accept header is a plain form;
    None when Flask must decide (anything unusual, or an error to report)."""
    if not query:
        return _ACCEPTED.get(accept.strip().lower())
    key, _, value = query.partition("=")
    value = value.lower()
    return value if key == "format" and value in ("json", "yaml") else None


def answers_plain_status(method: str, path: str, query: str, accept: str) -> bool:
    """True for the requests StatusFastPath answers itself (from bytes it holds, so quick enough
    for the WSGI server's loop thread to serve them; see api/server.py)."""
    return method == "GET" and path == "/status" and plain_status_format(query, accept) is not None


class StatusFastPath:
    """WSGI middleware around the Flask app (`app.wsgi_app = StatusFastPath(app.wsgi_app, ...)`).
    `body(fmt)` returns the encoded /status for the current snapshot."""

    answers = staticmethod(answers_plain_status)

    def __init__(self, app: WSGIApp, body: Callable[[str], bytes]) -> None:
        self.app, self._body = app, body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") == "GET" and environ.get("PATH_INFO") == "/status":
            fmt = plain_status_format(
                environ.get("QUERY_STRING", ""), environ.get("HTTP_ACCEPT", "")
            )
            data = self._encoded(fmt) if fmt is not None else None
            if fmt is not None and data is not None:
                headers = [("Content-Type", content_type(fmt)), ("Content-Length", str(len(data)))]
                start_response("200 OK", headers)
                return [data]
        return self.app(environ, start_response)

    def _encoded(self, fmt: str) -> bytes | None:
        try:
            return self._body(fmt)
        except Exception:  # Flask reports it (a JSON 500, the traceback in the log)
            return None
