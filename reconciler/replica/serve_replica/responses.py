"""What a handler returned, sent as an ASGI response, the way Serve converts it: a starlette
Response is itself an ASGI app; str is text/plain; bytes are text/plain too (Serve's choice);
None is an empty body; anything else is JSON. A generator (sync or async) is streamed: each
item goes out as one chunk as soon as it is yielded."""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

from . import loop as runtime_loop
from . import web

TEXT = b"text/plain; charset=utf-8"


def encode(value: Any) -> tuple[bytes, bytes]:
    """(content type, body) of a plain return value."""
    if value is None:
        return b"text/plain", b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"text/plain", bytes(value)
    if isinstance(value, str):
        return TEXT, value.encode("utf-8")
    return b"application/json", web.to_json(value)


def _chunk(item: Any) -> bytes:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode("utf-8")
    return json.dumps(item, separators=(",", ":")).encode("utf-8")


async def send_result(value: Any, scope: Any, receive: Any, send: Any, status: int = 200) -> None:
    if web.is_response(value):
        await value(scope, receive, send)
        return
    if inspect.isasyncgen(value) or inspect.isgenerator(value):
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", TEXT)]}
        )
        async for item in iterate(value):
            await send({"type": "http.response.body", "body": _chunk(item), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    content_type, body = encode(value)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type)],
        }
    )
    await send({"type": "http.response.body", "body": body})


_DONE = object()


async def iterate(gen: Any) -> Any:
    """The items of a sync or async generator; a sync one is advanced on the thread pool (its
    body may block), an async one on the loop."""
    if inspect.isasyncgen(gen):
        try:
            async for item in gen:
                yield item
        finally:
            await gen.aclose()
        return
    try:
        while True:
            item = await runtime_loop.call(next, gen, _DONE)
            if item is _DONE:
                return
            yield item
    finally:
        await asyncio.shield(runtime_loop.call(gen.close))
