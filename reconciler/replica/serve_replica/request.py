"""The request object user code receives, and how return values become HTTP responses."""

from __future__ import annotations

import json
import traceback
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers (repeated headers joined with ", ")."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        merged: dict[str, str] = {}
        for key, value in pairs:
            k = key.lower()
            merged[k] = f"{merged[k]}, {value}" if k in merged else value
        self._items = merged

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Request:
    def __init__(self, method: str, target: str, headers: Headers, body: bytes) -> None:
        parts = urllib.parse.urlsplit(target)
        self.method = method
        self.path = parts.path
        self.query_string = parts.query
        self.query_params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path})"


Encoded = tuple[int, str, bytes]  # status, content type, body


def encode_result(value: Any) -> Encoded:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return 200, "application/octet-stream", bytes(value)
    if isinstance(value, str):
        return 200, "text/plain; charset=utf-8", value.encode("utf-8")
    return 200, "application/json", json.dumps(value).encode("utf-8")


def error_body(exc: BaseException) -> dict[str, str]:
    return {"error": str(exc) or type(exc).__name__, "type": type(exc).__name__}


def encode_error(exc: BaseException, status: int = 500) -> Encoded:
    return status, "application/json", json.dumps(error_body(exc)).encode("utf-8")


def last_line(exc: BaseException) -> str:
    """The traceback's final line, `ExcType: message` (what the engine reads as the error)."""
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip().splitlines()[-1] if lines else type(exc).__name__
