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
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any

_state: dict[str, Any] = {"loop": None, "thread": None, "pool": None}


class _Pool:
    """Worker threads for sync user code. Lighter than run_in_executor (one loop future and
    one thread-safe callback per call, no concurrent.futures.Future in between): this is on
    every sync request's path. Threads start on demand, up to `size`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop, self._size = loop, size
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0  # threads waiting for a job
        self._queued = 0  # jobs no thread has taken yet
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        with self._lock:
            self._queued += 1
            if self._queued > self._idle and self._threads < self._size:
                self._threads += 1
                threading.Thread(target=self._work, name="serve-sync", daemon=True).start()
        self._jobs.put((fn, future))
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            fn, future = self._jobs.get()
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            try:
                result = fn()
            except BaseException as exc:  # handed to the awaiting request
                self._loop.call_soon_threadsafe(_fail, future, exc)
            else:
                self._loop.call_soon_threadsafe(_done, future, result)


def _done(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def install(loop: asyncio.AbstractEventLoop, workers: int) -> None:
    """Make `loop` (running on the current thread) the runtime's loop."""
    _state["loop"] = loop
    _state["thread"] = threading.current_thread()
    _state["pool"] = _Pool(loop, max(4, workers))


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
    result = fn(*args, **kwargs) if is_async(fn) else await call_sync(fn, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def call_sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn` on the thread pool, with the caller's contextvars (the request's id and model)."""
    ctx = contextvars.copy_context()
    result = await _state["pool"].run(functools.partial(ctx.run, fn, *args, **kwargs))
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
