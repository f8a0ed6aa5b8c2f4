"""The one module that touches starlette and FastAPI, imported lazily: an image with only
`python3` starts and serves plain handlers; features that need a package say which one.

- `make_request`: a `starlette.requests.Request` when starlette is there, else the stdlib
  fallback with the same async API (`request.Request`).
- `is_response`: a starlette (or FastAPI) Response the user returned.
- `to_json`: JSON bytes of a return value (FastAPI's `jsonable_encoder` for pydantic models,
  dataclasses, dates... when present).
- `bind_ingress`: the ASGI app of an `@serve.ingress` class, its FastAPI routes bound to the
  replica's instance (their `self` becomes a dependency, as Serve does).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import sys
from typing import Any

from . import request as fallback

PACKAGES = {
    "starlette": "starlette (Debian: python3-starlette)",
    "fastapi": "fastapi (Debian: python3-fastapi)",
    "pydantic": "pydantic (Debian: python3-pydantic)",
    "multipart": "python-multipart (Debian: python3-multipart)",
    "anyio": "anyio (Debian: python3-anyio)",
    "uvicorn": "uvicorn (Debian: python3-uvicorn)",
    "requests": "requests (Debian: python3-requests)",
}


def missing_package_message(module: str) -> str:
    package = PACKAGES.get(module.split(".")[0])
    if package is None:
        return ""
    return (
        f"this image has no {package}; the reconciler's default image ships it, or give the "
        "deployment an image that has it (runtime_env.image_uri)"
    )


@functools.cache
def starlette_available() -> bool:
    try:
        import starlette.requests  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def strips_route_prefix() -> bool:
    """Starlette before 0.33 routes on `scope["path"]` alone, so Serve (then) took the route
    prefix off the path; later versions strip `root_path` themselves (`get_route_path`)."""
    if not starlette_available():
        return True
    try:
        from starlette import _utils
    except ImportError:
        return True
    return not hasattr(_utils, "get_route_path")


def make_request(scope: dict[str, Any], receive: Any) -> Any:
    if starlette_available():
        from starlette.requests import Request

        return Request(scope, receive)
    return fallback.Request(scope, receive)


def is_response(value: Any) -> bool:
    module = sys.modules.get("starlette.responses")
    return module is not None and isinstance(value, module.Response)


def to_json(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError):
        pass
    try:
        from fastapi.encoders import jsonable_encoder
    except ImportError:
        return json.dumps(value, separators=(",", ":"), default=_plain).encode("utf-8")
    return json.dumps(jsonable_encoder(value), separators=(",", ":")).encode("utf-8")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    for method in ("model_dump", "dict"):
        if callable(getattr(value, method, None)):
            return getattr(value, method)()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} cannot be returned as JSON")


def _is_fastapi(app: Any) -> bool:
    module = sys.modules.get("fastapi")
    return module is not None and isinstance(app, module.FastAPI)


def bind_ingress(app: Any, cls: type, instance: Any) -> Any:
    """The ASGI callable serving an `@serve.ingress(app)` class's replica."""
    if _is_fastapi(app):
        _bind_fastapi_routes(app, cls, instance)
    return app


def _bind_fastapi_routes(app: Any, cls: type, instance: Any) -> None:
    """Routes whose endpoint is a method of `cls` get `self` from a dependency that returns
    the instance; the others stay as they are. The new routes are built by FastAPI itself
    (`include_router`), so every route option carries over in any FastAPI version."""
    from fastapi import APIRouter, Depends
    from fastapi.routing import APIRoute

    methods = {f for klass in cls.__mro__ for f in vars(klass).values() if inspect.isfunction(f)}
    ours = [r for r in app.router.routes if isinstance(r, APIRoute) and r.endpoint in methods]
    if not ours:
        return

    def current_instance() -> Any:
        return instance

    router = APIRouter()
    for route in ours:
        signature = inspect.signature(route.endpoint)
        params = list(signature.parameters.values())
        first = params[0].replace(default=Depends(current_instance))
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params[1:]]
        route.endpoint.__signature__ = signature.replace(parameters=[first, *rest])
        router.routes.append(route)
    app.router.routes[:] = [r for r in app.router.routes if r not in ours]
    app.include_router(router)
