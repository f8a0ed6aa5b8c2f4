"""`serve.get_deployment_handle(name, app_name)` at request time instead of a bound argument."""

from ray import serve


@serve.deployment
class Clock:
    def now(self) -> str:
        return "tick"


@serve.deployment
class Caller:
    def __init__(self, clock):
        self._bound = clock  # keeps Clock in the graph

    async def __call__(self, request) -> dict:
        app_name = serve.get_replica_context().app_name
        handle = serve.get_deployment_handle("Clock", app_name=app_name)
        return {"now": await handle.now.remote()}


app = Caller.bind(Clock.bind())
