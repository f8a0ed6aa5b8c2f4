"""The request user code gets when starlette is not installed: the async API of
`starlette.requests.Request` over the same ASGI scope (`await request.body()`, `await
request.json()`, `await request.form()` for urlencoded forms, `.query_params`, `.path_params`,
`.headers`, `.url`, `.method`, `.client`, `.cookies`), and the error text helpers."""

from __future__ import annotations

import http.cookies
import json
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, NamedTuple


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only headers (repeated ones joined with ", "; `getlist` keeps
    them apart)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = [(k.lower(), v) for k, v in pairs]
        merged: dict[str, str] = {}
        for k, v in self._pairs:
            merged[k] = f"{merged[k]}, {v}" if k in merged else v
        self._items = merged

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> Headers:
        return cls([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]])

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self._pairs if k == key.lower()]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class _MultiDict(Mapping[str, str]):
    """Pairs as a mapping (the last value of a repeated key), with `getlist(key)`."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs, self._items = pairs, dict(pairs)

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self._pairs if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._pairs)


class QueryParams(_MultiDict):
    """Query string parameters: the last value of a repeated key, or `getlist(key)`."""

    def __init__(self, query: str) -> None:
        super().__init__(urllib.parse.parse_qsl(query, keep_blank_values=True))

    def __repr__(self) -> str:
        return f"QueryParams({self._pairs!r})"


class Address(NamedTuple):
    host: str
    port: int


class URL:
    def __init__(self, scope: Mapping[str, Any]) -> None:
        host = Headers.from_scope(scope).get("host")
        if host is None:
            server = scope.get("server") or ("localhost", 80)
            host = f"{server[0]}:{server[1]}"
        path = scope.get("root_path", "") + scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        self._text = f"{scope.get('scheme', 'http')}://{host}{path}" + (
            f"?{query}" if query else ""
        )
        self._parts = urllib.parse.urlsplit(self._text)

    scheme = property(lambda self: self._parts.scheme)
    netloc = property(lambda self: self._parts.netloc)
    path = property(lambda self: self._parts.path)
    query = property(lambda self: self._parts.query)
    hostname = property(lambda self: self._parts.hostname)
    port = property(lambda self: self._parts.port)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"URL({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(self._text)


class FormData(_MultiDict):
    async def close(self) -> None:
        return None


class Request:
    """A stdlib stand-in for `starlette.requests.Request` (starlette is not installed)."""

    def __init__(self, scope: dict[str, Any], receive: Any = None) -> None:
        self.scope = scope
        self.receive = receive
        self._body: bytes | None = None
        self.headers = Headers.from_scope(scope)
        self.method: str = scope["method"]
        self.query_params = QueryParams(scope.get("query_string", b"").decode("latin-1"))
        self.path_params: dict[str, Any] = scope.get("path_params", {})
        self.url = URL(scope)
        client = scope.get("client")
        self.client = Address(*client) if client else None
        self.state = scope.setdefault("state", {})

    @property
    def cookies(self) -> dict[str, str]:
        jar = http.cookies.SimpleCookie(self.headers.get("cookie", ""))
        return {k: m.value for k, m in jar.items()}

    async def stream(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            yield self._body
            return
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                return
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return

    async def body(self) -> bytes:
        if self._body is None:
            self._body = b"".join([chunk async for chunk in self.stream()])
        return self._body

    async def json(self) -> Any:
        return json.loads(await self.body())

    async def form(self) -> FormData:
        ctype = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            raise RuntimeError(
                "multipart form data needs starlette and python-multipart (Debian: "
                "python3-starlette, python3-multipart), which this image lacks; the "
                "reconciler's default image has both"
            )
        text = (await self.body()).decode("utf-8", "replace")
        return FormData(urllib.parse.parse_qsl(text, keep_blank_values=True))

    async def is_disconnected(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"Request({self.method} {self.url.path})"


def error_body(exc: BaseException) -> dict[str, str]:
    return {"error": str(exc) or type(exc).__name__, "type": type(exc).__name__}


def last_line(exc: BaseException) -> str:
    """The traceback's final line, `ExcType: message` (what the engine reads as the error)."""
    lines = traceback.format_exception_only(type(exc), exc)
    return "".join(lines).strip().splitlines()[-1] if lines else type(exc).__name__
