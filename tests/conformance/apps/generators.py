"""Generators returned from HTTP handlers are streamed: an async generator `__call__` and a sync
one."""

import asyncio
import time

from ray import serve


@serve.deployment
class AsyncCounter:
    async def __call__(self, request):
        n = int(request.query_params.get("n", "3"))
        for i in range(n):
            yield f"{i}\n"
            await asyncio.sleep(0.05)


@serve.deployment
class SyncCounter:
    def __call__(self, request):
        for i in range(int(request.query_params.get("n", "3"))):
            yield f"tick {i}\n"
            time.sleep(0.01)


app = AsyncCounter.bind()
sync_app = SyncCounter.bind()
