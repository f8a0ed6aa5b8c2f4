"""The `ray.serve` API pieces that need no server, in-process on a real event loop:
@serve.batch (sizes, timeout, setters, errors), @serve.multiplexed (LRU, shared loads,
the request's model id), handles pickled, and app builders called with their args."""

from __future__ import annotations

import asyncio
import pickle
import sys
from typing import Any

import pytest

from reconciler.runtime.bundle import RUNTIME_DIR

sys.path.insert(0, str(RUNTIME_DIR))  # the runtime's own absolute imports (serve_replica...)

from ray import serve
from serve_replica import context, graph
from serve_replica import loop as runtime_loop
from serve_replica.batching import batch
from serve_replica.handle import DeploymentHandle
from serve_replica.multiplex import has_multiplexed, multiplexed


def _run(coro: Any) -> Any:
    async def main() -> Any:
        runtime_loop.install(asyncio.get_running_loop(), workers=4)
        return await coro

    return asyncio.run(main())


class Model:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    @batch(max_batch_size=3, batch_wait_timeout_s=0.05)
    async def predict(self, xs: list[int]) -> list[int]:
        self.calls.append(list(xs))
        return [x * 10 for x in xs]

    @batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def broken(self, xs: list[int]) -> list[int]:
        return xs[:1]


def test_batch_groups_concurrent_calls_and_setters_apply() -> None:
    model = Model()

    async def go() -> list[int]:
        return list(await asyncio.gather(*(model.predict(i) for i in range(7))))

    assert _run(go()) == [i * 10 for i in range(7)]
    assert [len(c) for c in model.calls] == [3, 3, 1]
    model.predict.set_max_batch_size(7)
    model.calls.clear()
    assert _run(go()) == [i * 10 for i in range(7)] and len(model.calls) == 1
    with pytest.raises(ValueError):
        model.predict.set_max_batch_size(0)

    async def wrong() -> Any:
        return await asyncio.gather(model.broken(1), model.broken(2), return_exceptions=True)

    errors = _run(wrong())
    assert all(isinstance(e, TypeError) and "one result per input" in str(e) for e in errors)


class Server:
    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.unloaded: list[str] = []

    @multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id: str) -> Any:
        await asyncio.sleep(0.01)
        self.loaded.append(model_id)
        owner = self

        class Loaded:
            def __del__(self) -> None:
                owner.unloaded.append(model_id)

        return Loaded()


def test_multiplexed_lru_and_shared_loads() -> None:
    server = Server()

    async def go() -> None:
        a1, a2 = await asyncio.gather(server.get_model("a"), server.get_model("a"))
        assert a1 is a2  # one load for two concurrent asks
        await server.get_model("b")
        await server.get_model("a")  # a is now the most recent
        await server.get_model("c")  # evicts b
        token = context.set_request(context.RequestContext(multiplexed_model_id="b"))
        try:
            assert serve.get_multiplexed_model_id() == "b"
            await server.get_model()  # the request's model id
        finally:
            context.reset_request(token)

    _run(go())
    assert server.loaded == ["a", "b", "c", "b"]
    assert server.unloaded[:2] == ["b", "a"]
    assert has_multiplexed(Server) and not has_multiplexed(Model)


def test_handles_pickle_with_their_options() -> None:
    handle = DeploymentHandle("Model", "app").options(
        method_name="score", stream=True, multiplexed_model_id="m"
    )
    again = pickle.loads(pickle.dumps(handle))
    assert (again.deployment_name, again.app_name) == ("Model", "app")
    assert again._method_name == "score" and again._stream and again._model_id == "m"


@serve.deployment
class Echo:
    def __init__(self, message: str, repeat: int = 1) -> None:
        pass


try:
    import pydantic

    class EchoArgs(pydantic.BaseModel):
        message: str
        repeat: int = 2
except ImportError:  # pragma: no cover - the venv has pydantic
    pass


def typed_builder(args: EchoArgs) -> Any:
    return Echo.bind(args.message, args.repeat)


def test_builders_get_args_as_dict_or_their_pydantic_model() -> None:
    assert graph.to_application(typed_builder, {"message": "hi"}).args == ("hi", 2)
    assert graph.to_application(lambda args: Echo.bind(args["m"]), {"m": 1}).args == (1,)
    with pytest.raises(TypeError, match="takes no arguments"):
        graph.to_application(lambda: Echo.bind("x"), {"a": 1})
    with pytest.raises(TypeError, match="not an application"):
        graph.to_application(lambda args: 42, {})
