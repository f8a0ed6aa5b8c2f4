"""`@serve.batch`: concurrent requests are handled as one list; the setters change the batch
size from reconfigure()."""

from ray import serve


@serve.deployment(max_ongoing_requests=32, user_config={"max_batch_size": 4})
class BatchedModel:
    def reconfigure(self, config: dict):
        self.predict.set_max_batch_size(config["max_batch_size"])
        self.predict.set_batch_wait_timeout_s(0.25)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.1)
    async def predict(self, inputs: list) -> list:
        return [{"input": x, "batch_size": len(inputs)} for x in inputs]

    async def __call__(self, request) -> dict:
        return await self.predict(int(request.query_params["x"]))


app = BatchedModel.bind()
