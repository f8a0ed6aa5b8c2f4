"""Who may change things: every endpoint that changes state (pin, unpin, rollback) needs the
daemon's API token, sent as `Authorization: Bearer TOKEN`, compared in constant time. Without a
configured token those endpoints are off. Reads stay open, as before.

Browsers get a second lock against cross-site requests: the token travels in a header, never in
a cookie a browser would attach by itself, and a request that a browser marks as coming from
another site (`Sec-Fetch-Site`), or whose `Origin` (else `Referer`) names another host than the
one it was sent to, is refused before the token is even looked at. Command-line clients send
none of those headers and are judged by the token alone.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import Response, request

from reconciler.api.replies import error_response

OFF = (
    "changing endpoints (pin, unpin, rollback) are off: start the reconciler with "
    "--api-token-file FILE (or RECONCILER_API_TOKEN_FILE) to turn them on"
)
_SAME_SITE = ("same-origin", "none")  # none: typed in the address bar, a bookmark


class Guard:
    """Decides whether the current request may change state; `refusal()` is None when it may."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode("utf-8") if token else None

    @property
    def enabled(self) -> bool:
        return self._token is not None

    def refusal(self) -> Response | None:
        if self._token is None:
            return error_response(403, OFF)
        cross = cross_site_reason()
        if cross is not None:
            return error_response(403, f"cross-site request refused: {cross}")
        given = bearer_token(request.headers.get("Authorization", ""))
        if given is None or not hmac.compare_digest(given.encode("utf-8"), self._token):
            response = error_response(
                401,
                "this endpoint needs the API token: send 'Authorization: Bearer TOKEN' (the "
                "command line reads it from --token-file or RECONCILER_API_TOKEN)"
                if given is None
                else "wrong API token",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="serve-reconciler"'
            return response
        return None


def bearer_token(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def cross_site_reason() -> str | None:
    """Why the current request looks cross-site, or None."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in _SAME_SITE:
        return f"Sec-Fetch-Site is {site[:40]!r}"
    host = (request.host or "").lower()
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin == "null" or urlsplit(origin).netloc.lower() != host:
            return f"Origin {origin[:100]!r} is not {host!r}"
        return None
    referer = request.headers.get("Referer")
    if referer is not None and urlsplit(referer).netloc.lower() != host:
        return f"Referer names another host than {host!r}"
    return None
