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
import time
import urllib.request

HEADER = b"x-serve-router"
PATH = "/-/router-secret"
ASK_EVERY_S = 1.0  # at most one question a second: an unknown stamp costs the router little


class RouterSecret:
    def __init__(self, router_url: str, timeout_s: float = 2.0) -> None:
        self._url = router_url.rstrip("/") + PATH
        self._timeout_s = timeout_s
        # The secret, and the one before it: an ingress made again (or a reconciler restarted
        # before it kept the secret) has old workers finishing calls with the old stamp.
        self._known: tuple[bytes, ...] = ()
        self._asked_at = float("-inf")
        self._lock: asyncio.Lock | None = None
        # No proxy, whatever the user's env says: the router is on this network.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _knows(self, stamp: bytes) -> bool:
        return any(hmac.compare_digest(stamp, known) for known in self._known)

    async def matches(self, stamp: bytes | None) -> bool:
        if not stamp:
            return False
        if self._knows(stamp):
            return True
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one question at a time; a later call may find it answered
            if not self._knows(stamp) and time.monotonic() - self._asked_at >= ASK_EVERY_S:
                self._asked_at = time.monotonic()
                told = await asyncio.get_running_loop().run_in_executor(None, self._ask)
                if told and not self._knows(told):  # no answer keeps what was known
                    self._known = (told, *self._known[:1])
        return self._knows(stamp)

    def _ask(self) -> bytes:
        """The router's secret ("": it has none, or did not answer: a bridge's router is
        inside the network and needs none)."""
        try:
            with self._opener.open(self._url, timeout=self._timeout_s) as answer:
                if answer.status != 200:
                    return b""
                return bytes(answer.read(256).strip())
        except Exception:  # any failure to ask is no answer
            return b""
