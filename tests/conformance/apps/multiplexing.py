"""Model multiplexing: each replica keeps at most 2 models (LRU); requests name their model in
the `serve_multiplexed_model_id` header, and go to a replica that has it loaded."""

from ray import serve


class FakeModel:
    def __init__(self, model_id: str):
        self.model_id = model_id

    def predict(self, x: int) -> str:
        return f"{self.model_id}:{x}"


@serve.deployment(num_replicas=2)
class ModelServer:
    def __init__(self):
        self.loads = 0
        self.cache = None

    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id: str) -> FakeModel:
        self.loads += 1
        return FakeModel(model_id)

    async def __call__(self, request) -> dict:
        model_id = serve.get_multiplexed_model_id()
        model = await self.get_model(model_id)
        return {
            "result": model.predict(int(request.query_params.get("x", "1"))),
            "model_id": model_id,
            "replica": serve.get_replica_context().replica_tag,
            "loads": self.loads,
        }

    async def predict(self, x: int) -> dict:
        model = await self.get_model(serve.get_multiplexed_model_id())
        return {"result": model.predict(x), "replica": serve.get_replica_context().replica_tag}


@serve.deployment
class Router:
    def __init__(self, models):
        self.models = models

    async def __call__(self, request) -> dict:
        model_id = request.query_params["model"]
        handle = self.models.options(multiplexed_model_id=model_id)
        return await handle.predict.remote(int(request.query_params.get("x", "1")))


app = ModelServer.bind()
routed = Router.bind(ModelServer.bind())
