"""Method, URL, query parameters and headers of a starlette Request."""

from ray import serve
from starlette.requests import Request


@serve.deployment
class Inspector:
    def __call__(self, request: Request) -> dict:
        return {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "tags": request.query_params.getlist("tag"),
            "agent": request.headers.get("x-agent"),
            "path_params": dict(request.path_params),
        }


app = Inspector.bind()
