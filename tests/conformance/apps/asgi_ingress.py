"""Plain ASGI ingress: an ASGI application object is served as it is, and a plain function
given to serve.ingress is a builder, called in the replica with no arguments to make the app,
as Serve does."""

import json

from ray import serve


class EchoPath:
    """A bare ASGI application: answers with the path and root_path it was given."""

    def __init__(self, via):
        self.via = via

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = {"path": scope["path"], "root_path": scope["root_path"], "via": self.via}
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def build_app():
    return EchoPath("builder")


@serve.deployment
@serve.ingress(EchoPath("object"))
class Raw:
    pass


@serve.deployment
@serve.ingress(build_app)
class Built:
    pass


app = Raw.bind()
builder_app = Built.bind()
