"""A plain Starlette app (no FastAPI) as the ingress of a deployment."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse(f"hello {request.path_params['name']}")


async def echo(request):
    return JSONResponse({"echo": await request.json()})


web = Starlette(routes=[Route("/hello/{name}", hello), Route("/echo", echo, methods=["POST"])])

from ray import serve  # noqa: E402


@serve.deployment
@serve.ingress(web)
class Site:
    pass


app = Site.bind()
