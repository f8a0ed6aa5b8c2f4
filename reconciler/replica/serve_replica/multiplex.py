"""`@serve.multiplexed(max_num_models_per_replica=N)`: a per-replica LRU of loaded models.

`await self.get_model(model_id)` loads a model once (concurrent loads of one id share the load)
and keeps at most N; the least recently used one is dropped (its `__del__` runs). Requests
name their model in the `serve_multiplexed_model_id` header (handles set it from
`.options(multiplexed_model_id=...)`), `serve.get_multiplexed_model_id()` reads it, and the
ingress sends requests with the same id to the same replica.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
from collections.abc import Callable
from typing import Any

from . import loop as runtime_loop
from .context import get_multiplexed_model_id

MODEL_ID_HEADER = "serve_multiplexed_model_id"
MARK = "__serve_multiplexed__"


class ModelCache:
    def __init__(self, load: Callable[[str], Any], capacity: int) -> None:
        self._load = load
        self.capacity = capacity
        self.models: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._loading: dict[str, asyncio.Future[Any]] = {}

    async def get(self, model_id: str) -> Any:
        if model_id in self.models:
            self.models.move_to_end(model_id)
            return self.models[model_id]
        if model_id in self._loading:
            return await asyncio.shield(self._loading[model_id])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[model_id] = future
        try:
            while len(self.models) >= self.capacity:
                await self._evict()
            model = await runtime_loop.call(self._load, model_id)
            self.models[model_id] = model
            future.set_result(model)
            return model
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failed load no one else awaits is not "lost"
            raise
        finally:
            del self._loading[model_id]

    async def _evict(self) -> None:
        """Drop the least recently used model. A sync `__del__` runs when the last reference
        goes (calling it here too would run it twice); an async one is awaited, as Serve does."""
        _, model = self.models.popitem(last=False)
        unload = getattr(model, "__del__", None)
        if unload is not None and inspect.iscoroutinefunction(unload):
            await unload()
        del model


class _Multiplexed:
    def __init__(self, fn: Callable[..., Any], capacity: int) -> None:
        self._fn = fn
        self._capacity = capacity
        self._cache: ModelCache | None = None
        self._attr = f"__serve_model_cache_{fn.__name__}_{id(self)}"
        self.__serve_async__ = True
        setattr(self, MARK, True)
        functools.update_wrapper(self, fn)

    def cache_for(self, instance: Any) -> ModelCache:
        if instance is None:
            if self._cache is None:
                self._cache = ModelCache(self._fn, self._capacity)
            return self._cache
        cache = instance.__dict__.get(self._attr)
        if cache is None:
            cache = ModelCache(functools.partial(self._fn, instance), self._capacity)
            instance.__dict__[self._attr] = cache
        return cache  # type: ignore[no-any-return]

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        cache = self.cache_for(instance)

        async def bound(model_id: str | None = None) -> Any:
            return await cache.get(_model_id(model_id))

        bound.__name__ = self._fn.__name__
        setattr(bound, MARK, True)
        return bound

    async def __call__(self, model_id: str | None = None) -> Any:
        return await self.cache_for(None).get(_model_id(model_id))


def _model_id(given: str | None) -> str:
    model_id = given if given is not None else get_multiplexed_model_id()
    if not isinstance(model_id, str) or not model_id:
        raise ValueError(
            "no model id: pass one, or send the request with the "
            f"'{MODEL_ID_HEADER}' header (handle.options(multiplexed_model_id=...))"
        )
    return model_id


def multiplexed(func: Callable[..., Any] | None = None, max_num_models_per_replica: int = 3) -> Any:
    """`@serve.multiplexed` or `@serve.multiplexed(max_num_models_per_replica=N)` (N >= 1, or
    -1 for no limit, as in Serve)."""
    if max_num_models_per_replica != -1 and (
        not isinstance(max_num_models_per_replica, int) or max_num_models_per_replica < 1
    ):
        raise ValueError("max_num_models_per_replica must be an integer >= 1, or -1")
    capacity = 2**31 if max_num_models_per_replica == -1 else max_num_models_per_replica

    def wrap(fn: Callable[..., Any]) -> Any:
        if not callable(fn) or inspect.isgeneratorfunction(fn):
            raise TypeError("@serve.multiplexed decorates a function that loads one model")
        return _Multiplexed(fn, capacity)

    return wrap(func) if func is not None else wrap


def has_multiplexed(cls: Any) -> bool:
    """Whether a deployment class defines a @serve.multiplexed method."""
    return isinstance(cls, type) and any(
        getattr(v, MARK, False) for k in dir(cls) for v in [inspect.getattr_static(cls, k, None)]
    )
