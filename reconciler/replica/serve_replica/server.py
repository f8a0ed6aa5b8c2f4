"""What the replica answers: control endpoints under /-/ (ready, healthz, state, reconfigure,
call), and everything else as an ASGI request to the user's deployment.

Each user request gets a request id (the client's `X-Request-Id`, else a new one; returned in
the response's `x-request-id`), its multiplexed model id (`serve_multiplexed_model_id`), and
the application's route prefix as ASGI `root_path` (the ingress names it in
`x-serve-route-prefix`; HAProxy forwards the full path).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import sys
import time
import traceback
import urllib.parse
from typing import Any

from . import calls, web
from .asgi import Exchange, make_scope
from .context import RequestContext, reset_request, set_request
from .multiplex import MODEL_ID_HEADER
from .protocol import HttpConnection, HttpRequest
from .replica import Replica
from .request import error_body

log = logging.getLogger("ray.serve")
JSON = [(b"content-type", b"application/json")]
ROUTE_PREFIX_HEADER = b"x-serve-route-prefix"
TOKEN_HEADER = b"x-serve-token"  # the control token (when the engine set one)
_MODEL_ID = MODEL_ID_HEADER.encode()


def print_request_error(exc: BaseException) -> None:
    """Prefixed so a request's traceback is never taken for the replica's fatal error."""
    text = "".join(traceback.format_exception(exc)).rstrip().splitlines()
    print("\n".join(f"[request] {line}" for line in text), file=sys.stderr, flush=True)


def request_context(request: HttpRequest, route: str, app: str) -> RequestContext:
    rid = request.header(b"x-request-id")
    model = request.header(_MODEL_ID)
    return RequestContext(
        request_id=rid.decode("latin-1") if rid else os.urandom(16).hex(),
        multiplexed_model_id=model.decode("latin-1") if model else "",
        route=route,
        app_name=app,
    )


class Dispatcher:
    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self._strip = web.strips_route_prefix()

    async def __call__(self, request: HttpRequest, conn: HttpConnection) -> None:
        if request.path.startswith("/-/"):
            await self._control(request, conn)
        else:
            await self._user(request, conn)

    def _json(self, conn: HttpConnection, request: HttpRequest, status: int, value: Any) -> None:
        conn.respond(status, JSON, json.dumps(value).encode("utf-8"), request)

    # --- user requests ---------------------------------------------------------------------

    async def _user(self, request: HttpRequest, conn: HttpConnection) -> None:
        prefix = (request.header(ROUTE_PREFIX_HEADER) or b"").decode("latin-1").rstrip("/")
        ctx = request_context(request, prefix or "/", self.replica.settings.app)
        exchange = Exchange(request, conn, [(b"x-request-id", ctx.request_id.encode("latin-1"))])
        token = set_request(ctx)
        try:
            async with self.replica.request_slot():
                scope = make_scope(request, conn, prefix, self._strip)
                await self.replica.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            print_request_error(exc)
            if not exchange.head_written:
                self._json(conn, request, 503 if _not_ready(exc) else 500, error_body(exc))
            elif not exchange.complete:  # (starlette re-raises after its own 500: that one is
                exchange.abort()  # complete, and the connection stays usable)
            return
        finally:
            reset_request(token)
        if not exchange.head_written:
            message = "the deployment returned without sending a response"
            self._json(conn, request, 500, {"error": message, "type": "RuntimeError"})
        elif not exchange.complete:
            exchange.abort()

    # --- control ---------------------------------------------------------------------------

    async def _control(self, request: HttpRequest, conn: HttpConnection) -> None:
        replica, path, method = self.replica, request.path, request.method
        if method in ("GET", "HEAD") and path == "/-/ready":  # the ingress's check: no token
            ok = replica.initialized and not replica.draining
            return self._json(conn, request, 200 if ok else 503, {"ready": ok})
        if not self._authorized(request):
            message = "this control endpoint needs the reconciler's token (X-Serve-Token)"
            return self._json(conn, request, 401, {"error": message, "type": "Unauthorized"})
        if method in ("GET", "HEAD"):
            if path == "/-/healthz":
                return await self._healthz(request, conn)
            if path == "/-/state":
                return self._json(conn, request, 200, replica.state())
        if method == "POST":
            if path == "/-/reconfigure":
                return await self._reconfigure(request, conn)
            if path.startswith("/-/call/"):
                return await self._call(request, conn)
        message = f"no control endpoint {method} {path}"
        self._json(conn, request, 404, {"error": message, "type": "NotFound"})

    def _authorized(self, request: HttpRequest) -> bool:
        """No token set (a single host: the port is on loopback), or the request carries it.
        On a swarm the control port is published on every node's network."""
        expected = self.replica.settings.control_token
        if not expected:
            return True
        given = request.header(TOKEN_HEADER) or b""
        return hmac.compare_digest(given, expected.encode("latin-1"))

    async def _healthz(self, request: HttpRequest, conn: HttpConnection) -> None:
        replica = self.replica
        if not replica.initialized:
            waited = time.monotonic() - replica.started_at
            starting = f"the deployment's __init__ has not returned after {waited:.0f}s"
            error = replica.error or starting
            return self._json(conn, request, 503, {"healthy": False, "error": error})
        try:
            await replica.check_health()
        except Exception as exc:
            return self._json(conn, request, 503, {"healthy": False, **error_body(exc)})
        self._json(conn, request, 200, {"healthy": True})

    async def _reconfigure(self, request: HttpRequest, conn: HttpConnection) -> None:
        try:
            data = json.loads(request.body or b"{}")
            await self.replica.reconfigure(data.get("user_config"), str(data["user_config_hash"]))
        except Exception as exc:
            return self._json(conn, request, 500, error_body(exc))
        self._json(conn, request, 200, {"user_config_hash": self.replica.user_config_hash})

    async def _call(self, request: HttpRequest, conn: HttpConnection) -> None:
        parts = [urllib.parse.unquote(p) for p in request.path[len("/-/call/") :].split("/")]
        if len(parts) != 3:
            message = f"bad call path {request.path}"
            return self._json(conn, request, 404, {"error": message, "type": "NotFound"})
        app, deployment, method = parts
        s = self.replica.settings
        if (app, deployment) != (s.app, s.deployment):
            message = f"this replica serves {s.app}/{s.deployment}, not {app}/{deployment}"
            return self._json(conn, request, 404, {"error": message, "type": "NotFound"})
        token = set_request(request_context(request, "", s.app))
        try:
            await calls.answer(self.replica, method, request, conn)
        finally:
            reset_request(token)


def _not_ready(exc: Exception) -> bool:
    from .replica import NotInitialized

    return isinstance(exc, NotInitialized)
