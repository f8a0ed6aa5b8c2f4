"""The callee side of a handle call (`POST /-/call/<app>/<deployment>/<method>`).

Pickle (what handles send) is accepted only from inside the Docker network: a connection from
the network's gateway is the host reaching the published control port, and gets the JSON form
only, so a local user of the host cannot make a replica unpickle what they send. The one caller
on the host that may is the router of an ingress in the host's network, whose calls carry its
secret stamp (router_secret.py).
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


@functools.cache
def host_gateway() -> str | None:
    """The default gateway of this network namespace (the Docker host, from a container)."""
    try:
        with open("/proc/net/route", encoding="ascii") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "00000000":
                    return socket.inet_ntoa(struct.pack("<L", int(fields[2], 16)))
    except (OSError, ValueError):
        return None
    return None


async def pickle_allowed(conn: HttpConnection, request: HttpRequest, router: RouterSecret) -> bool:
    gateway = host_gateway()
    if conn.peer is None or gateway is None or conn.peer[0] != gateway:
        return True
    return await router.matches(request.header(ROUTER_HEADER))


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
