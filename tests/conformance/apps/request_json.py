"""A class deployment reading a JSON body: `await request.json()`, as Serve requires."""

from ray import serve
from starlette.requests import Request


@serve.deployment
class Summer:
    async def __call__(self, request: Request) -> dict:
        data = await request.json()
        return {"sum": sum(data["numbers"]), "count": len(data["numbers"])}


app = Summer.bind()
