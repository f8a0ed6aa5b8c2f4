"""One replica's state: builds the user's deployment and runs every call into user code.

Requests (HTTP and handle calls) hold a slot of `max_ongoing_requests` and the read side of the
writer lock; `reconfigure()` holds the write side, so requests wait while it runs (as Serve
does). The import and the constructor run on the thread pool, so the control endpoints answer
while a slow `__init__` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from typing import Any

from . import loop as runtime_loop
from . import userapp, web
from .asgi import lifespan
from .context import (
    DeploymentID,
    ReplicaContext,
    ReplicaID,
    set_ingress,
    set_replica_context,
)
from .graph import find_node, name_nodes, resolve_args
from .handle import DeploymentHandle, DeploymentResponse
from .router_secret import RouterSecret
from .settings import Settings
from .startup import build_application
from .sync import ReadWriteLock

log = logging.getLogger("ray.serve")


class NotInitialized(RuntimeError):
    pass


class _Slot:
    """One request's slot (a class, not a generator context manager: it is on every request's
    path, and this is several times cheaper)."""

    __slots__ = ("_replica",)

    def __init__(self, replica: Replica) -> None:
        self._replica = replica

    async def __aenter__(self) -> None:
        replica = self._replica
        replica.ongoing += 1
        try:
            await replica._slots.acquire()
        except BaseException:
            replica.ongoing -= 1
            raise
        try:
            await replica._rw.acquire_read()
        except BaseException:
            replica._slots.release()
            replica.ongoing -= 1
            raise

    async def __aexit__(self, *exc: object) -> None:
        replica = self._replica
        await replica._rw.release_read()
        replica._slots.release()
        replica.ongoing -= 1


class Replica:
    def __init__(self, settings: Settings, replica_id: str) -> None:
        self.settings = settings
        self.replica_id = replica_id
        self._target: Any = None  # the instance, or the function of a function deployment
        self._is_function = False
        self.app: Any = None  # the ASGI app HTTP requests go to
        self.is_ingress_app = False
        self.initialized = False
        self.started_at = time.monotonic()
        self.draining = False
        self.error: str | None = None
        self.user_config, self.user_config_hash = self._initial_config()
        self._rw = ReadWriteLock()
        self._slots = asyncio.Semaphore(settings.max_ongoing_requests)
        self.ongoing = 0
        self.router_secret = RouterSecret(settings.router_url)  # calls.py, from the gateway

    # --- startup ---------------------------------------------------------------------------

    def _state_file(self) -> str:
        return os.path.join(self.settings.state_dir, "user_config.json")

    def _initial_config(self) -> tuple[Any, str]:
        """The persisted config of an earlier process in this container wins over the env."""
        try:
            with open(self._state_file(), encoding="utf-8") as f:
                saved = json.load(f)
            return saved["user_config"], str(saved["user_config_hash"])
        except (OSError, ValueError, KeyError, TypeError):
            return self.settings.user_config, self.settings.user_config_hash

    async def initialize(self) -> None:
        """Import, construct, first reconfigure, first health check (any raise: startup failed)."""
        s = self.settings
        # Import and construct on the main thread, as a Ray actor does (signal handlers...).
        root = await runtime_loop.call_on_main(build_application, s.import_path, s.args)
        set_ingress(s.app, name_nodes(root)[id(root)][0])
        node = find_node(root, s.deployment)
        args, kwargs = resolve_args(node, root, self._make_handle)
        dep = node.deployment
        self._is_function = dep.is_function
        target = dep.func_or_class
        self._target = (
            target if dep.is_function else await runtime_loop.call_on_main(target, *args, **kwargs)
        )
        replica_id = ReplicaID(self.replica_id, DeploymentID(s.deployment, s.app))
        set_replica_context(ReplicaContext(replica_id, self._target, s.replica))
        self.app, self.is_ingress_app = userapp.asgi_app(target, self._target, s.deployment)
        if self.is_ingress_app:
            await lifespan(self.app, "startup")
        if self.user_config is not None:
            await self._apply_config(self.user_config)
        await self.check_health()
        self.initialized = True

    def _make_handle(self, deployment: str) -> DeploymentHandle:
        return DeploymentHandle(deployment, self.settings.app)

    async def _apply_config(self, config: Any) -> None:
        method = None if self._is_function else getattr(self._target, "reconfigure", None)
        if method is None:
            raise ValueError(
                f"user_config is set but deployment {self.settings.deployment!r} "
                "has no reconfigure() method"
            )
        await runtime_loop.call(method, config)

    # --- calls into user code --------------------------------------------------------------

    def request_slot(self) -> _Slot:
        """`async with replica.request_slot():` around every call into user code."""
        if not self.initialized:
            raise NotInitialized(f"replica of {self.settings.deployment!r} is not initialized")
        return _Slot(self)

    def method(self, name: str) -> Any:
        if self._is_function:
            if name != "__call__":
                raise AttributeError(f"function deployment has no method {name!r}")
            return self._target
        if name.startswith("_") and name != "__call__":
            raise AttributeError(f"method {name!r} is private")
        method = getattr(self._target, name, None)
        if method is None:
            raise AttributeError(f"deployment {self.settings.deployment!r} has no method {name!r}")
        return method

    async def call_method(self, name: str, args: Any, kwargs: Any) -> Any:
        """A handle call (inside a request slot); a generator result is the caller's to run."""
        result = await runtime_loop.call(self.method(name), *args, **kwargs)
        if isinstance(result, DeploymentResponse):
            result = await result
        return result

    async def reconfigure(self, config: Any, config_hash: str) -> None:
        if not self.initialized:
            raise NotInitialized("replica is not initialized")
        async with self._rw.write():
            if config_hash == self.user_config_hash:
                return
            if config is not None:
                await self._apply_config(config)
            self.user_config, self.user_config_hash = config, config_hash
            self._persist()

    def _persist(self) -> None:
        try:
            os.makedirs(self.settings.state_dir, exist_ok=True)
            tmp = self._state_file() + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(
                    {"user_config": self.user_config, "user_config_hash": self.user_config_hash}, f
                )
            os.replace(tmp, self._state_file())
        except OSError as exc:  # the config is applied; only a process restart would lose it
            log.warning("could not persist user_config: %s", exc)

    async def check_health(self) -> None:
        """Run the user's check_health() with the configured timeout; raise when unhealthy."""
        method = None if self._is_function else getattr(self._target, "check_health", None)
        if method is None:
            return
        timeout = self.settings.health_check_timeout_s
        try:
            await asyncio.wait_for(runtime_loop.call(method), timeout)
        except TimeoutError:
            raise TimeoutError(f"check_health() did not return within {timeout}s") from None

    # --- shutdown ----------------------------------------------------------------------------

    async def drain(self) -> None:
        """Serve's loop: sleep first (routers drop us meanwhile), then wait for in-flight calls."""
        self.draining = True
        while True:
            await asyncio.sleep(self.settings.wait_loop_s)
            if self.ongoing == 0:
                return

    async def shutdown(self) -> None:
        if self.is_ingress_app:
            with contextlib.suppress(Exception):
                await lifespan(self.app, "shutdown")
        if self._is_function or self._target is None:
            return
        method = getattr(type(self._target), "__del__", None)
        if method is not None:
            await runtime_loop.call(method, self._target)

    def state(self) -> dict[str, Any]:
        return {
            "initialized": self.initialized,
            "draining": self.draining,
            "ongoing": self.ongoing,
            "user_config_hash": self.user_config_hash,
            "error": self.error,
            "pid": os.getpid(),
            "replica_id": self.replica_id,
            "starlette": web.starlette_available(),
        }
