"""`@serve.batch`: calls of one item each are gathered into one call of a list.

The decorated function takes lists (one per positional argument and keyword) and returns a list
of the same length; callers pass one item and get their own result. A batch is sent when it
holds `max_batch_size` items or `batch_wait_timeout_s` after its first item arrived. One queue
per instance (per function for function deployments), on the replica's event loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any

from . import loop as runtime_loop


class BatchQueue:
    def __init__(self, fn: Callable[..., Any], settings: BatchSettings) -> None:
        self._fn = fn
        self.settings = settings
        self._pending: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._slots: asyncio.Semaphore | None = None

    async def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        if self._arrived is None:
            self._arrived = asyncio.Event()
            self._slots = asyncio.Semaphore(self.settings.max_concurrent_batches)
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, kwargs, future))
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        assert self._arrived is not None and self._slots is not None
        while self._pending:
            await self._gather()
            size = self.settings.max_batch_size
            batch, self._pending = self._pending[:size], self._pending[size:]
            await self._slots.acquire()
            asyncio.get_running_loop().create_task(self._call(batch))

    async def _gather(self) -> None:
        """Wait until the batch is full or its first item is old enough."""
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.batch_wait_timeout_s
        while len(self._pending) < self.settings.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    async def _call(self, batch: list[Any]) -> None:
        assert self._slots is not None
        try:
            positional = [list(col) for col in zip(*(args for args, _, _ in batch), strict=True)]
            keys = batch[0][1].keys()
            keywords = {k: [kwargs[k] for _, kwargs, _ in batch] for k in keys}
            results = self._fn(*positional, **keywords)
            if inspect.isawaitable(results):
                results = await results
            elif not inspect.iscoroutinefunction(self._fn) and inspect.isgenerator(results):
                results = list(results)
            results = list(results)
            if len(results) != len(batch):
                raise TypeError(
                    f"a @serve.batch function must return one result per input: got "
                    f"{len(results)} results for {len(batch)} inputs"
                )
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        finally:
            self._slots.release()


class BatchSettings:
    def __init__(self, max_batch_size: int, batch_wait_timeout_s: float, concurrent: int) -> None:
        self.max_batch_size = max_batch_size
        self.batch_wait_timeout_s = batch_wait_timeout_s
        self.max_concurrent_batches = concurrent


def _check(max_batch_size: Any, timeout: Any) -> None:
    if not isinstance(max_batch_size, int) or isinstance(max_batch_size, bool):
        raise TypeError("max_batch_size must be an integer >= 1")
    if max_batch_size < 1:
        raise ValueError("max_batch_size must be an integer >= 1")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
        raise ValueError("batch_wait_timeout_s must be a number >= 0")


class _Batched:
    """The decorated function; as a class attribute it binds one queue per instance."""

    def __init__(self, fn: Callable[..., Any], settings: BatchSettings) -> None:
        self._fn = fn
        self._settings = settings
        self._queue: BatchQueue | None = None
        self._attr = f"__serve_batch_queue_{fn.__name__}_{id(self)}"
        self.__serve_async__ = inspect.iscoroutinefunction(fn)
        functools.update_wrapper(self, fn)

    def _queue_for(self, instance: Any) -> BatchQueue:
        if instance is None:
            if self._queue is None:
                self._queue = BatchQueue(self._fn, self._copy())
            return self._queue
        queue = instance.__dict__.get(self._attr)
        if queue is None:
            queue = BatchQueue(functools.partial(self._fn, instance), self._copy())
            instance.__dict__[self._attr] = queue
        return queue  # type: ignore[no-any-return]

    def _copy(self) -> BatchSettings:
        s = self._settings
        return BatchSettings(s.max_batch_size, s.batch_wait_timeout_s, s.max_concurrent_batches)

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        return self if instance is None else _BoundBatch(self, instance)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._fn, self._queue_for(None), args, kwargs)

    def set_max_batch_size(self, value: int) -> None:
        _check(value, 0)
        self._queue_for(None).settings.max_batch_size = value

    def set_batch_wait_timeout_s(self, value: float) -> None:
        _check(1, value)
        self._queue_for(None).settings.batch_wait_timeout_s = value

    def _get_curr_batch_size(self) -> int:
        return len(self._queue_for(None)._pending)


class _BoundBatch:
    def __init__(self, batched: _Batched, instance: Any) -> None:
        self._batched, self._instance = batched, instance
        self.__name__ = batched._fn.__name__
        self.__doc__ = batched._fn.__doc__
        self.__serve_async__ = batched.__serve_async__

    @property
    def _queue(self) -> BatchQueue:
        return self._batched._queue_for(self._instance)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._batched._fn, self._queue, args, kwargs)

    def set_max_batch_size(self, value: int) -> None:
        _check(value, 0)
        self._queue.settings.max_batch_size = value

    def set_batch_wait_timeout_s(self, value: float) -> None:
        _check(1, value)
        self._queue.settings.batch_wait_timeout_s = value

    def _get_curr_batch_size(self) -> int:
        return len(self._queue._pending)


def _call(fn: Callable[..., Any], queue: BatchQueue, args: Any, kwargs: Any) -> Any:
    """Async functions give an awaitable; a sync one blocks its (worker) thread for the result."""
    if inspect.iscoroutinefunction(fn):
        return queue.submit(tuple(args), dict(kwargs))
    return runtime_loop.run_blocking(queue.submit(tuple(args), dict(kwargs)))


def batch(
    _func: Callable[..., Any] | None = None,
    /,
    max_batch_size: int = 10,
    batch_wait_timeout_s: float = 0.0,
    max_concurrent_batches: int = 1,
    batch_size_fn: Callable[..., int] | None = None,
) -> Any:
    """`@serve.batch` or `@serve.batch(max_batch_size=..., batch_wait_timeout_s=...)`."""
    _check(max_batch_size, batch_wait_timeout_s)
    settings = BatchSettings(max_batch_size, batch_wait_timeout_s, max(1, max_concurrent_batches))

    def wrap(fn: Callable[..., Any]) -> Any:
        if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
            raise NotImplementedError("@serve.batch on a generator is not supported here")
        return _Batched(fn, settings)

    return wrap(_func) if _func is not None else wrap
