"""The format of handle calls between deployments: pickle, inside one instance's network.

Request body: pickle of `(args, kwargs)`, Content-Type PICKLE. Reply: pickle of `("ok", value)`
or `("error", exception, traceback_text)`. A streamed reply is a sequence of frames (4-byte
big-endian length, then a pickle): `("item", value)` ..., then `("end", None)` or an error.
The JSON form (`{"args": [...], "kwargs": {...}}` -> `{"result": ...}`) is still answered for
callers that send application/json (tools, tests).
"""

from __future__ import annotations

import pickle
import struct
import traceback
from typing import Any

PICKLE = "application/x-serve-pickle"
STREAM_HEADER = "x-serve-stream"
_LEN = struct.Struct(">I")


class RemoteCallError(RuntimeError):
    """A handle call failed in a way that has no exception to re-raise (the callee was not
    reached, or its exception could not be sent); `remote_type` names the remote type."""

    def __init__(self, message: str, remote_type: str = "") -> None:
        super().__init__(f"{remote_type}: {message}" if remote_type else message)
        self.remote_type = remote_type


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def ok(value: Any) -> bytes:
    return dumps(("ok", value))


def error(exc: BaseException) -> bytes:
    text = "".join(traceback.format_exception(exc))
    try:
        return dumps(("error", exc, text))
    except Exception:  # an exception that cannot be pickled: keep its type and message
        return dumps(("error", RemoteCallError(str(exc), type(exc).__name__), text))


def frame(kind: str, value: Any) -> bytes:
    data = dumps((kind, value)) if kind != "error" else error(value)
    return _LEN.pack(len(data)) + data


def unwrap(data: bytes) -> Any:
    """The value of an ("ok", v) reply; raises the remote exception of an error reply."""
    reply = pickle.loads(data)
    if reply[0] in ("ok", "item"):
        return reply[1]
    if reply[0] == "end":
        raise StopAsyncIteration
    exc, text = reply[1], reply[2] if len(reply) > 2 else ""
    if isinstance(exc, BaseException):
        if text:
            exc.add_note("Raised in the called deployment:\n" + text.rstrip())
        raise exc
    raise RemoteCallError(str(exc))


class FrameReader:
    """Splits a byte stream into frames, whatever the chunk boundaries."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames = []
        while len(self._buf) >= _LEN.size:
            (size,) = _LEN.unpack_from(self._buf)
            if len(self._buf) < _LEN.size + size:
                break
            frames.append(bytes(self._buf[_LEN.size : _LEN.size + size]))
            del self._buf[: _LEN.size + size]
        return frames
