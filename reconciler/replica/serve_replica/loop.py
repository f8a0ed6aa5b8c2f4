"""The replica's one event loop, and running user code on it or beside it.

The HTTP server, handle transport, `@serve.batch` queues and every async method of user code
run on one asyncio loop (the main thread). Sync methods run on a thread pool, with the caller's
contextvars, so a blocking handler does not stop the others (Serve's threadpool mode).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any

_state: dict[str, Any] = {"loop": None, "thread": None, "pool": None}


def install(loop: asyncio.AbstractEventLoop, workers: int) -> None:
    """Make `loop` (running on the current thread) the runtime's loop."""
    _state["loop"] = loop
    _state["thread"] = threading.current_thread()
    _state["pool"] = concurrent.futures.ThreadPoolExecutor(max(4, workers), "serve-sync")


def get() -> asyncio.AbstractEventLoop:
    loop = _state["loop"]
    if loop is None:
        raise RuntimeError("the replica's event loop is not running")
    return loop  # type: ignore[no-any-return]


def on_loop_thread() -> bool:
    return threading.current_thread() is _state["thread"]


def is_async(fn: Any) -> bool:
    """True when calling `fn` gives an awaitable (coroutine functions, async `__call__`,
    `@serve.batch` on an async function)."""
    if getattr(fn, "__serve_async__", False):
        return True
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    return (
        not inspect.isfunction(fn)
        and not inspect.ismethod(fn)
        and (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
    )


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call sync or async user code from the loop: async on the loop, sync on the pool. A
    coroutine (or other awaitable) a sync function returns is awaited here."""
    if is_async(fn):
        result = fn(*args, **kwargs)
    else:
        ctx = contextvars.copy_context()
        run = functools.partial(ctx.run, fn, *args, **kwargs)
        result = await get().run_in_executor(_state["pool"], run)
    if inspect.isawaitable(result):
        result = await result
    return result


def run_blocking(awaitable: Awaitable[Any], timeout: float | None = None) -> Any:
    """Wait for `awaitable` on the loop from a worker thread (what `.result()` does)."""
    if on_loop_thread():
        raise RuntimeError(
            "a blocking call (such as DeploymentResponse.result()) was made inside the event "
            "loop, which would deadlock: use `await response` in async methods"
        )

    async def wrapper() -> Any:
        return await awaitable

    return asyncio.run_coroutine_threadsafe(wrapper(), get()).result(timeout)


def submit(coro: Awaitable[Any]) -> concurrent.futures.Future[Any]:
    """Schedule `coro` on the loop from any thread."""

    async def wrapper() -> Any:
        return await coro

    return asyncio.run_coroutine_threadsafe(wrapper(), get())
