"""What admits a pickled handle call that reaches this replica from its network's gateway.

A connection from the gateway is the host: a published control port, which any local user can
reach, so a pickle from there is refused (calls.py). The router of an ingress in the host's
network (the reconciler's runtime/ingress_network.py) connects from the gateway too. It stamps
every call it carries with a secret (`X-Serve-Router`, overwriting whatever the caller sent)
and tells that secret only to the instance's subnet, never to the gateway, on
`/-/router-secret`: so this replica asks the router for it when a stamp it does not know
arrives (the ingress was made again with another), one question at a time, and trusts the
call when the stamps match.
"""

from __future__ import annotations

import asyncio
import hmac
import urllib.error
import urllib.request

HEADER = b"x-serve-router"
PATH = "/-/router-secret"


class RouterSecret:
    def __init__(self, router_url: str, timeout_s: float = 2.0) -> None:
        self._url = router_url.rstrip("/") + PATH
        self._timeout_s = timeout_s
        self._value = b""
        self._lock: asyncio.Lock | None = None

    async def matches(self, stamp: bytes | None) -> bool:
        if not stamp:
            return False
        if self._value and hmac.compare_digest(stamp, self._value):
            return True
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one question at a time; a later call may find it answered
            if not (self._value and hmac.compare_digest(stamp, self._value)):
                loop = asyncio.get_running_loop()
                # No answer (the router reloading, a slow host) keeps what was known.
                self._value = await loop.run_in_executor(None, self._ask) or self._value
        return bool(self._value) and hmac.compare_digest(stamp, self._value)

    def _ask(self) -> bytes:
        """The router's secret ("": it has none, or did not answer: a bridge's router is
        inside the network and needs none)."""
        try:
            with urllib.request.urlopen(self._url, timeout=self._timeout_s) as answer:
                if answer.status != 200:
                    return b""
                return bytes(answer.read(256).strip())
        except (OSError, urllib.error.URLError, ValueError):
            return b""
