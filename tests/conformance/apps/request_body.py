"""The raw body with `await request.body()`; bytes come back as they are."""

from ray import serve


@serve.deployment
class Reverser:
    async def __call__(self, request) -> bytes:
        body = await request.body()
        return body[::-1]


app = Reverser.bind()
