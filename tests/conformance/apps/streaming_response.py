"""StreamingResponse: the first chunk reaches the client while the generator still runs (it waits
until the client, having read that chunk, calls /release)."""

import asyncio

from ray import serve
from starlette.responses import StreamingResponse


@serve.deployment
class Streamer:
    def __init__(self):
        self.released = asyncio.Event()

    async def chunks(self):
        self.released.clear()
        yield "first\n"
        await asyncio.wait_for(self.released.wait(), timeout=20)
        for i in range(3):
            yield f"after-release {i}\n"

    async def __call__(self, request):
        if request.url.path.endswith("/release"):
            self.released.set()
            return "released"
        return StreamingResponse(self.chunks(), media_type="text/plain")


app = Streamer.bind()
