"""A deployment as the ASGI app its replica serves: the `@serve.ingress` app (FastAPI routes bound
to the instance), or `__call__` / the function called the way Serve calls it: with a
starlette Request, or with nothing when it takes no parameter."""

from __future__ import annotations

import inspect
from typing import Any

from . import loop as runtime_loop
from . import responses, web
from .api import BUILD_ASGI_ATTR, LATE_BOUND, asgi_app_of


def takes_request(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params
    )


class CallApp:
    """ASGI app calling `fn(request)` or `fn()` and sending back what it returns."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.with_request = takes_request(fn)
        self.async_gen = inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(
            getattr(fn, "__call__", None)  # noqa: B004
        )
        self.is_async = runtime_loop.is_async(fn)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        args = (web.make_request(scope, receive),) if self.with_request else ()
        if self.async_gen:
            result = self.fn(*args)
        elif self.is_async:
            result = await self.fn(*args)
        else:
            result = await runtime_loop.call_sync(self.fn, *args)
        await responses.send_result(result, scope, receive, send)


def no_http(deployment: str) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await responses.send_result(
            {
                "error": f"deployment {deployment!r} has no __call__ to answer HTTP",
                "type": "NotFound",
            },
            scope,
            receive,
            send,
            status=404,
        )

    return app


def asgi_app(target: Any, instance: Any, deployment: str) -> tuple[Any, bool]:
    """(the ASGI app, whether it is an @serve.ingress app)."""
    app = asgi_app_of(target)
    if app is LATE_BOUND:
        app = getattr(instance, BUILD_ASGI_ATTR)()
    elif inspect.isfunction(app):  # Serve: a function given to serve.ingress builds the app
        app = app()
    if app is not None:
        return web.bind_ingress(app, target, instance), True
    fn = instance if not isinstance(target, type) else getattr(instance, "__call__", None)  # noqa: B004
    if fn is None:
        return no_http(deployment), False
    return CallApp(fn), False
