"""User code the runtime tests deploy (copied into a code tree; imports the `ray.serve` shim)."""

APP_SOURCE = """
import asyncio
import threading
import time

from ray import serve


@serve.deployment(user_config={"price": 3})
class Stand:
    def __init__(self, default=1):
        self.price = default
        self.healthy = True

    def reconfigure(self, config):
        if config.get("fail"):
            raise ValueError("bad price config")
        self.price = config.get("price", self.price)
        self.healthy = config.get("healthy", True)

    def check_health(self):
        if not self.healthy:
            raise RuntimeError("the stand is closed")

    def check_price(self, amount):
        return self.price * amount

    async def async_price(self, amount):
        await asyncio.sleep(0.01)
        return self.price * amount

    async def __call__(self, request):
        return {
            "price": self.price,
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "header": request.headers.get("X-Test"),
            "body": (await request.body()).decode(),
        }


@serve.deployment
class Market:
    def __init__(self, stand):
        self.stand = stand

    async def __call__(self, request):
        fruit, amount = await request.json()
        if fruit == "TEXT":
            return "plain"
        if fruit == "RAW":
            return b"raw"
        if fruit == "BOOM":
            raise KeyError("no such fruit")
        return await self.stand.check_price.remote(amount)

    def sync_price(self, amount):
        return self.stand.check_price.remote(amount).result(timeout_s=10)


@serve.deployment
class Slow:
    def __init__(self):
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(float(request.query_params.get("s", "0.5")))
        with self.lock:
            self.active -= 1
        return {"peak": self.peak}

    def __del__(self):
        print("[app] __del__ called", flush=True)


@serve.deployment
async def echo(request):
    return await request.body()


@serve.deployment
class Broken:
    def __init__(self):
        raise RuntimeError("the stand has no fruit")


@serve.deployment
class Plain:
    def __call__(self, request):
        return "ok"


@serve.deployment
class Streamer:
    async def __call__(self, request):
        for i in range(int(request.query_params.get("n", "2"))):
            yield f"{i}\\n"
            await asyncio.sleep(0.01)


@serve.deployment
class Echo:
    def __init__(self, message, repeat=1):
        self.message, self.repeat = message, repeat

    def __call__(self):
        return " ".join([self.message] * self.repeat)


def build(args):
    return Echo.bind(args["message"])


def build_typed(args: "EchoArgs"):
    return Echo.bind(args.message, args.repeat)


try:
    from pydantic import BaseModel

    class EchoArgs(BaseModel):
        message: str
        repeat: int = 2
except ImportError:
    pass


graph = Market.bind(Stand.bind(2))
stream_app = Streamer.bind()
slow_app = Slow.bind()
echo_app = echo.bind()
broken_app = Broken.bind()
plain_app = Plain.bind()
"""
