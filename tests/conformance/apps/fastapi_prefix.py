"""A FastAPI app served under a route_prefix: routes are written relative to it (Serve gives
the app root_path), and URLs the app builds include the prefix."""

from fastapi import FastAPI, Request
from ray import serve

api = FastAPI()


@serve.deployment
@serve.ingress(api)
class Versioned:
    @api.get("/items/{item_id}")
    def item(self, item_id: str, request: Request) -> dict:
        return {
            "item": item_id,
            "root_path": request.scope.get("root_path"),
            "self_url": str(request.url_for("item", item_id=item_id)),
        }

    @api.get("/")
    def root(self) -> str:
        return "root of the prefix"


app = Versioned.bind()
