"""The `ray.serve` user API: `@serve.deployment`, `Deployment.options/.bind`, bound applications.

A bound deployment (`Application`) is a plain node: the deployment plus the args it will be built
with. Nested nodes in the args become handles when the replica builds its own deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Serve's options that change nothing inside one replica; accepted so user code runs unchanged.
KNOWN_OPTIONS = frozenset(
    {
        "num_replicas", "route_prefix", "ray_actor_options", "placement_group_bundles",
        "placement_group_strategy", "max_replicas_per_node", "user_config",
        "max_concurrent_queries", "max_ongoing_requests", "max_queued_requests",
        "autoscaling_config", "graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s",
        "health_check_period_s", "health_check_timeout_s", "is_driver_deployment",
        "logging_config", "version", "prev_version", "init_args", "init_kwargs",
    }
)  # fmt: skip


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
    def user_config(self) -> Any:
        return self._options.get("user_config")

    @property
    def num_replicas(self) -> Any:
        return self._options.get("num_replicas", 1)

    @property
    def is_function(self) -> bool:
        return not isinstance(self.func_or_class, type)

    def options(self, *, name: str | None = None, **options: Any) -> Deployment:
        _check_options(options)
        merged = {**self._options, **options}
        return Deployment(self.func_or_class, name or self._name, merged)

    def bind(self, *args: Any, **kwargs: Any) -> Application:
        return Application(self, args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"deployment {self._name!r} cannot be called directly; use .bind()")

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
        return Deployment(target, name or target.__name__, options)

    if _func_or_class is not None:
        return wrap(_func_or_class)
    return wrap


@dataclass(frozen=True)
class ReplicaContext:
    app_name: str
    deployment: str
    replica_tag: str
    servable_object: Any = None


_context: list[ReplicaContext] = []  # set once per process by the runtime


def set_replica_context(ctx: ReplicaContext) -> None:
    _context[:] = [ctx]


def get_replica_context() -> ReplicaContext:
    if not _context:
        raise RuntimeError("get_replica_context() is only available inside a replica")
    return _context[0]
