"""The callee side of a handle call (`POST /-/call/<app>/<deployment>/<method>`).

Pickle (what handles send) is accepted only from the replica's own Docker networks (and its
loopback): a connection from the network's gateway is the host reaching the published control
port, and one from any other address came through a port published beyond the loopback; both
get the JSON form only, so nobody outside can make a replica unpickle what they send. The one
caller at the gateway that may is the router of an ingress in the host's network, whose calls
carry its secret stamp (router_secret.py).
"""

from __future__ import annotations

import functools
import inspect
import json
import pickle
import socket
import struct
from typing import Any

from . import responses, wire
from .protocol import HttpConnection, HttpRequest
from .request import error_body
from .router_secret import HEADER as ROUTER_HEADER
from .router_secret import RouterSecret

JSON = [(b"content-type", b"application/json")]
PICKLED = [(b"content-type", wire.PICKLE.encode())]


Routes = tuple[tuple[tuple[int, int], ...], str | None]


def parse_routes(text: str) -> Routes:
    """The own subnets (network, mask) and the default gateway in /proc/net/route's text."""
    subnets, gateway = [], None
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest, via, mask = (int(fields[i], 16) for i in (1, 2, 7))
        if dest == 0 and via:
            gateway = socket.inet_ntoa(struct.pack("<L", via))
        elif dest and not via:
            subnets.append((dest, mask))
    return tuple(subnets), gateway


@functools.cache
def _routes() -> Routes:
    """This network namespace's (empty and None where they cannot be read)."""
    try:
        with open("/proc/net/route", encoding="ascii") as f:
            return parse_routes(f.read())
    except (OSError, ValueError):
        return (), None


def inside(peer: str, routes: Routes) -> bool | None:
    """Whether `peer` is on one of this container's networks, or its loopback (None: cannot
    tell, an IPv6 peer or no routes)."""
    try:
        packed = socket.inet_aton(peer)
    except OSError:
        return None
    if packed[0] == 127:
        return True
    subnets = routes[0]
    if not subnets:
        return None
    address = struct.unpack("<L", packed)[0]
    return any(address & mask == dest for dest, mask in subnets)


async def pickle_allowed(conn: HttpConnection, request: HttpRequest, router: RouterSecret) -> bool:
    """From inside the network (not its gateway); or from the gateway with the router's stamp.
    A peer from elsewhere (a port published on another address reaches the replica with the
    caller's own address) is refused."""
    if conn.peer is None:
        return True
    routes, peer = _routes(), str(conn.peer[0])
    if routes[1] is not None and peer == routes[1]:  # the default gateway: the Docker host
        return await router.matches(request.header(ROUTER_HEADER))
    return inside(peer, routes) is not False


async def answer(replica: Any, method: str, request: HttpRequest, conn: HttpConnection) -> None:
    ctype = (request.header(b"content-type") or b"").split(b";")[0].strip().decode("latin-1")
    if ctype != wire.PICKLE:
        return await _answer_json(replica, method, request, conn)
    if not await pickle_allowed(conn, request, replica.router_secret):
        body = json.dumps(
            {"error": "pickled calls are only taken from inside the network", "type": "Forbidden"}
        ).encode()
        return conn.respond(403, JSON, body, request)
    if request.header(wire.STREAM_HEADER.encode()) == b"1":
        return await _answer_stream(replica, method, request, conn)
    try:
        args, kwargs = pickle.loads(request.body)
        async with replica.request_slot():
            result = await replica.call_method(method, args, kwargs)
        if inspect.isgenerator(result) or inspect.isasyncgen(result):
            raise TypeError(
                f"method {method!r} returned a generator: call it with handle.options(stream=True)"
            )
        body = wire.ok(result)
    except Exception as exc:
        _log_error(exc)
        body = wire.error(exc)
    conn.respond(200, PICKLED, body, request)


async def _answer_stream(
    replica: Any, method: str, request: HttpRequest, conn: HttpConnection
) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ntransfer-encoding: chunked\r\n\r\n"
    conn.write(head % wire.PICKLE.encode())
    try:
        args, kwargs = pickle.loads(request.body)
        async with replica.request_slot():
            result = await replica.call_method(method, args, kwargs)
            if not (inspect.isgenerator(result) or inspect.isasyncgen(result)):
                raise TypeError(
                    f"method {method!r} did not return a generator, but the handle was "
                    "made with stream=True"
                )
            async for item in responses.iterate(result):
                _chunk(conn, wire.frame("item", item))
                await conn.drain()
        _chunk(conn, wire.frame("end", None))
    except ConnectionError:
        conn.closing = True
        return
    except Exception as exc:
        _log_error(exc)
        _chunk(conn, wire.frame("error", exc))
    conn.write(b"0\r\n\r\n")
    if not request.keep_alive:
        conn.closing = True


def _chunk(conn: HttpConnection, data: bytes) -> None:
    conn.write(b"%x\r\n%s\r\n" % (len(data), data))


async def _answer_json(
    replica: Any, method: str, request: HttpRequest, conn: HttpConnection
) -> None:
    try:
        data = json.loads(request.body or b"{}")
        async with replica.request_slot():
            result = await replica.call_method(method, data.get("args", []), data.get("kwargs", {}))
        body = json.dumps({"result": result}).encode("utf-8")
    except Exception as exc:
        _log_error(exc)
        return conn.respond(500, JSON, json.dumps(error_body(exc)).encode("utf-8"), request)
    conn.respond(200, JSON, body, request)


def _log_error(exc: BaseException) -> None:
    from .server import print_request_error

    print_request_error(exc)
