"""The `ray.serve` decorators: `@serve.deployment`, `.options()/.bind()`, `@serve.ingress`.

A bound deployment (`Application`) is a plain node: the deployment plus the args it will be built
with. Nested nodes in the args become handles when the replica builds its own deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .context import ReplicaContext, get_replica_context, set_replica_context

# Serve's options that change nothing inside one replica; accepted so user code runs unchanged.
KNOWN_OPTIONS = frozenset(
    {
        "num_replicas", "route_prefix", "ray_actor_options", "placement_group_bundles",
        "placement_group_strategy", "max_replicas_per_node", "user_config",
        "max_concurrent_queries", "max_ongoing_requests", "max_queued_requests",
        "autoscaling_config", "graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s",
        "health_check_period_s", "health_check_timeout_s", "is_driver_deployment",
        "logging_config", "version", "prev_version", "init_args", "init_kwargs",
        "request_router_config", "max_constructor_retry_count",
    }
)  # fmt: skip
ASGI_ATTR = "__serve_asgi_app__"
BUILD_ASGI_ATTR = "__serve_build_asgi_app__"  # Serve's late-bound ingress: built by the instance
LATE_BOUND = object()  # @serve.ingress() with no app

__all__ = [
    "KNOWN_OPTIONS",
    "Application",
    "Deployment",
    "ReplicaContext",
    "asgi_app_of",
    "deployment",
    "get_replica_context",
    "ingress",
    "set_replica_context",
]


class Deployment:
    """A class or function made into a deployment. Build it with `.bind(...)`, never directly."""

    def __init__(self, func_or_class: Any, name: str, options: dict[str, Any]) -> None:
        self.func_or_class = func_or_class
        self._name = name
        self._options = dict(options)

    @property
    def name(self) -> str:
        return self._name

    @property
    def options_given(self) -> dict[str, Any]:
        """The options the code gave (@serve.deployment / .options()), except `name`."""
        return dict(self._options)

    @property
    def user_config(self) -> Any:
        return self._options.get("user_config")

    @property
    def num_replicas(self) -> Any:
        return self._options.get("num_replicas", 1)

    @property
    def max_ongoing_requests(self) -> Any:
        return self._options.get("max_ongoing_requests", 5)

    @property
    def route_prefix(self) -> Any:
        return self._options.get("route_prefix")

    @property
    def is_function(self) -> bool:
        return not isinstance(self.func_or_class, type)

    def options(
        self, *, name: str | None = None, func_or_class: Any = None, **options: Any
    ) -> Deployment:
        _check_options(options)
        merged = {**self._options, **options}
        target = func_or_class if func_or_class is not None else self.func_or_class
        return Deployment(target, name or self._name, merged)

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        return Application(self, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"Deployment {self._name!r} cannot be constructed directly: use "
            f"`{self._name}.bind()` and call it through a handle"
        )

    def __repr__(self) -> str:
        return f"Deployment(name={self._name!r})"


@dataclass(frozen=True, eq=False)
class Application:
    """A deployment bound to its init args (Serve's Application / ClassNode)."""

    deployment: Deployment
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _check_options(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise TypeError(f"unknown deployment option(s): {', '.join(unknown)}")


def deployment(_func_or_class: Any = None, *, name: str | None = None, **options: Any) -> Any:
    """`@serve.deployment`, `@serve.deployment(...)` or `serve.deployment(cls, ...)`."""
    _check_options(options)

    def wrap(target: Any) -> Deployment:
        if isinstance(target, Deployment):
            raise TypeError("@serve.deployment is applied twice")
        return Deployment(target, name or target.__name__, options)

    if _func_or_class is not None:
        return wrap(_func_or_class)
    return wrap


def ingress(app: Any = None) -> Any:
    """`@serve.ingress(app)`: the class serves HTTP through `app` (FastAPI, Starlette or any
    ASGI callable); FastAPI routes defined on the class's methods get the replica's instance as
    `self`. As in Serve, a plain function given here is a builder, called with no arguments in
    the replica to make the app, and `@serve.ingress()` with no app asks the instance's
    `__serve_build_asgi_app__()`. Put it under `@serve.deployment`, as Serve requires."""

    def decorator(cls: Any) -> Any:
        if isinstance(cls, Deployment):
            raise ValueError(
                "@serve.ingress must be applied below @serve.deployment (to the class itself)"
            )
        if not isinstance(cls, type):
            raise ValueError("@serve.ingress must be applied to a class")
        if "__call__" in cls.__dict__:
            raise ValueError("a class passed to @serve.ingress may not have a __call__ method")
        if app is None and not hasattr(cls, BUILD_ASGI_ATTR):
            raise ValueError(
                f"serve.ingress() without an app needs {cls.__name__} to define "
                f"{BUILD_ASGI_ATTR}"
            )
        if app is not None and not callable(app):
            raise TypeError(f"@serve.ingress needs an ASGI application, got {type(app).__name__}")
        setattr(cls, ASGI_ATTR, app if app is not None else LATE_BOUND)
        return cls

    return decorator


def asgi_app_of(target: Any) -> Any:
    """The ASGI app given to `@serve.ingress` on this class (or a base class), else None."""
    return getattr(target, ASGI_ATTR, None) if isinstance(target, type) else None
