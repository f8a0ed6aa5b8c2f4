"""starlette Response classes with status codes and headers."""

from ray import serve
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response


@serve.deployment
class Responder:
    async def __call__(self, request):
        kind = request.query_params.get("kind")
        if kind == "created":
            return JSONResponse({"id": 7}, status_code=201, headers={"x-item": "7"})
        if kind == "teapot":
            return PlainTextResponse("short and stout", status_code=418)
        if kind == "empty":
            return Response(status_code=204)
        if kind == "redirect":
            return RedirectResponse("/elsewhere", status_code=307)
        return Response(b"<p>hi</p>", media_type="text/html")


app = Responder.bind()
