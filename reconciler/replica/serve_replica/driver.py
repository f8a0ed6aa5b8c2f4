"""The driver part of a Serve file, made harmless inside a replica.

A Serve file often ends with `serve.run(app)`, or calls `ray.init()` / `serve.start()` at module
level. Here the replica imports the module itself and the reconciler deploys the graph, so these
do nothing but log that they did nothing.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("ray.serve")


def _skipped(what: str) -> None:
    log.info("%s does nothing inside a replica: the reconciler deploys the application", what)


def run(target: Any, *args: Any, **kwargs: Any) -> Any:
    """`serve.run(app)`: returns a handle to the app's ingress, as Serve does, without
    deploying anything."""
    _skipped("serve.run()")
    from .handle import get_app_handle

    name = kwargs.get("name", "default")
    try:
        return get_app_handle(name)
    except RuntimeError:
        return None


def start(*args: Any, **kwargs: Any) -> None:
    _skipped("serve.start()")


def shutdown(*args: Any, **kwargs: Any) -> None:
    _skipped("serve.shutdown()")


def delete(*args: Any, **kwargs: Any) -> None:
    _skipped("serve.delete()")


def status(*args: Any, **kwargs: Any) -> None:
    _skipped("serve.status()")


def ray_init(*args: Any, **kwargs: Any) -> None:
    _skipped("ray.init()")


def ray_shutdown(*args: Any, **kwargs: Any) -> None:
    _skipped("ray.shutdown()")


def ray_is_initialized() -> bool:
    return True
