"""Composition with handles: a method by name, `.options(method_name=...)`, awaiting
responses in async code, and a response passed straight into another call."""

from ray import serve
from ray.serve.handle import DeploymentHandle


@serve.deployment
class Adder:
    def __init__(self, increment: int):
        self.increment = increment

    def add(self, x: int) -> int:
        return x + self.increment

    def __call__(self, x: int) -> int:
        return x + 100 * self.increment


@serve.deployment
class Multiplier:
    async def multiply(self, x: int, factor: int = 2) -> int:
        return x * factor


@serve.deployment
class Pipeline:
    def __init__(self, adder: DeploymentHandle, multiplier: DeploymentHandle):
        self.adder = adder
        self.multiplier = multiplier

    async def __call__(self, request) -> dict:
        x = int(request.query_params["x"])
        added = await self.adder.add.remote(x)
        via_options = await self.adder.options(method_name="add").remote(x)
        called = await self.adder.remote(x)
        chained = await self.multiplier.multiply.remote(self.adder.add.remote(x), factor=3)
        return {"added": added, "via_options": via_options, "called": called, "chained": chained}


app = Pipeline.bind(Adder.bind(1), Multiplier.bind())
