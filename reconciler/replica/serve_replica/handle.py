"""DeploymentHandle: calls to another deployment of the application, through the router.

`handle.method.remote(*args, **kwargs)` (or `handle.options(method_name=...).remote(...)`)
returns a `DeploymentResponse` at once: `await response` in async code, `.result()` in sync
code. With `.options(stream=True)` it returns a `DeploymentResponseGenerator` to iterate (sync
or async). Arguments and results are pickled, so any picklable value travels; a response passed
as an argument is resolved first, as Serve does. Handles themselves can be passed and pickled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import urllib.parse
from collections.abc import AsyncIterator, Generator
from typing import Any

from . import loop as runtime_loop
from . import transport, wire
from .context import current_replica, current_request, ingress_of
from .multiplex import MODEL_ID_HEADER
from .wire import RemoteCallError

_router: list[transport.Router] = []


def set_router(router: transport.Router) -> None:
    _router[:] = [router]


def _the_router() -> transport.Router:
    if not _router:
        raise RuntimeError("deployment handles only work inside a replica")
    return _router[0]


class DeploymentResponse:
    """The pending result of one handle call."""

    def __init__(self, future: concurrent.futures.Future[Any]) -> None:
        self._future = future

    def result(self, *, timeout_s: float | None = None, _skip_asyncio_check: bool = False) -> Any:
        if runtime_loop.on_loop_thread() and not self._future.done():
            raise RuntimeError(
                "Sync methods should not be called from within an `asyncio` event loop: "
                "use `await response` instead of `response.result()`"
            )
        try:
            return self._future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the handle call did not finish within {timeout_s}s") from None

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.wrap_future(self._future).__await__()

    def cancel(self) -> None:
        self._future.cancel()

    def cancelled(self) -> bool:
        return self._future.cancelled()


class DeploymentResponseGenerator:
    """The items of a streaming handle call (`.options(stream=True)`), sync or async."""

    def __init__(self, items: AsyncIterator[Any]) -> None:
        self._items = items

    def __aiter__(self) -> DeploymentResponseGenerator:
        return self

    async def __anext__(self) -> Any:
        return await asyncio.wrap_future(runtime_loop.submit(self._items.__anext__()))

    def __iter__(self) -> DeploymentResponseGenerator:
        return self

    def __next__(self) -> Any:
        try:
            return runtime_loop.run_blocking(self._items.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def cancel(self) -> None:
        runtime_loop.submit(self._items.aclose())  # type: ignore[attr-defined]


class DeploymentHandle:
    """A handle to one deployment of an application (given to `__init__` in place of a
    binding, or from `serve.get_deployment_handle` / `serve.get_app_handle`)."""

    def __init__(
        self,
        deployment_name: str,
        app_name: str = "default",
        *,
        method_name: str = "__call__",
        stream: bool = False,
        multiplexed_model_id: str = "",
    ) -> None:
        self.deployment_name, self.app_name = deployment_name, app_name
        self._method_name, self._stream = method_name, stream
        self._model_id = multiplexed_model_id

    def options(
        self,
        *,
        method_name: str | None = None,
        multiplexed_model_id: str | None = None,
        stream: bool | None = None,
        **_ignored: Any,  # use_new_handle_api, request_router options...: nothing to do here
    ) -> DeploymentHandle:
        return DeploymentHandle(
            self.deployment_name,
            self.app_name,
            method_name=method_name or self._method_name,
            stream=self._stream if stream is None else stream,
            multiplexed_model_id=(
                self._model_id if multiplexed_model_id is None else multiplexed_model_id
            ),
        )

    def __getattr__(self, name: str) -> DeploymentHandle:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.options(method_name=name)

    def __reduce__(self) -> Any:
        kwargs = {
            "method_name": self._method_name,
            "stream": self._stream,
            "multiplexed_model_id": self._model_id,
        }
        return _rebuild, (self.deployment_name, self.app_name, kwargs)

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        router = _the_router()
        path = "/-/call/" + "/".join(
            urllib.parse.quote(p, safe="")
            for p in (self.app_name, self.deployment_name, self._method_name)
        )
        headers = self._headers()
        if self._stream:
            return DeploymentResponseGenerator(_streamed(router, path, args, kwargs, headers))
        return DeploymentResponse(runtime_loop.submit(_called(router, path, args, kwargs, headers)))

    def _headers(self) -> dict[str, str]:
        request = current_request()
        headers = {}
        if self._model_id:
            headers[MODEL_ID_HEADER] = self._model_id
        if request.request_id:
            headers["x-request-id"] = request.request_id
        return headers

    def __repr__(self) -> str:
        return f"DeploymentHandle(deployment={self.deployment_name!r}, app={self.app_name!r})"


def _rebuild(deployment: str, app: str, kwargs: dict[str, Any]) -> DeploymentHandle:
    return DeploymentHandle(deployment, app, **kwargs)


async def _resolved(args: Any, kwargs: dict[str, Any]) -> bytes:
    """Responses given as arguments are awaited first (top level, as Serve does)."""
    args = [await a if isinstance(a, DeploymentResponse) else a for a in args]
    kwargs = {k: await v if isinstance(v, DeploymentResponse) else v for k, v in kwargs.items()}
    return wire.dumps((args, kwargs))


async def _called(
    router: transport.Router, path: str, args: Any, kwargs: Any, headers: dict[str, str]
) -> Any:
    return await transport.call(router, path, await _resolved(args, kwargs), headers)


async def _streamed(
    router: transport.Router, path: str, args: Any, kwargs: Any, headers: dict[str, str]
) -> AsyncIterator[Any]:
    payload = await _resolved(args, kwargs)
    async for item in transport.stream(router, path, payload, headers):
        yield item


def get_deployment_handle(deployment_name: str, app_name: str | None = None) -> DeploymentHandle:
    """`serve.get_deployment_handle(name, app_name=None)`: app_name defaults to this
    replica's application."""
    replica = current_replica()
    app = app_name or (replica.app_name if replica else "default")
    return DeploymentHandle(deployment_name, app)


def get_app_handle(name: str) -> DeploymentHandle:
    """`serve.get_app_handle(name)`: a handle to that application's ingress deployment."""
    ingress = ingress_of(name)
    if ingress is None:
        raise RuntimeError(
            f"cannot find the ingress of application {name!r} from this replica: only the "
            "replica's own application is known here; use serve.get_deployment_handle"
        )
    return DeploymentHandle(ingress, name)


__all__ = [
    "DeploymentHandle",
    "DeploymentResponse",
    "DeploymentResponseGenerator",
    "RemoteCallError",
    "get_app_handle",
    "get_deployment_handle",
]
