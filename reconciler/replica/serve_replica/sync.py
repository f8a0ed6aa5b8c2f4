"""Concurrency helpers: Serve's replica writer lock, and the one event loop for async user code."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Callable, Iterator
from typing import Any


class ReadWriteLock:
    """Many readers (requests) or one writer (reconfigure); a waiting writer blocks new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class LoopThread:
    """One asyncio event loop on a daemon thread; every coroutine of user code runs on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="serve-loop", daemon=True
        )
        self._thread.start()

    def run(self, awaitable: Any, timeout: float | None = None) -> Any:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking call on the event loop thread would deadlock")

        async def wrapper() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def invoke(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a sync or async user callable from a worker thread and return its result."""
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            return self.run(result)
        return result
