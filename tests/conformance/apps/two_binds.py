"""Two binds of one class in a graph are two deployments, `Model` and `Model_1`, as in Serve."""

from ray import serve


@serve.deployment
class Model:
    def __init__(self, weight: int):
        self.weight = weight

    def score(self, x: int) -> int:
        return self.weight * x


@serve.deployment
class Ensemble:
    def __init__(self, first, second):
        self.models = [first, second]

    async def __call__(self, request) -> dict:
        x = int(request.query_params.get("x", "1"))
        return {"scores": [await m.score.remote(x) for m in self.models]}


app = Ensemble.bind(Model.bind(2), Model.bind(3))
