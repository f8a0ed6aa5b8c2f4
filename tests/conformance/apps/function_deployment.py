"""Function deployments, sync and async, called with the request as Serve calls them."""

from ray import serve


@serve.deployment
def shout(request) -> str:
    return request.query_params.get("word", "nothing").upper() + "!"


@serve.deployment
async def double(request) -> dict:
    data = await request.json()
    return {"doubled": [2 * x for x in data]}


app = shout.bind()
async_app = double.bind()
