"""One replica's state: builds the user's deployment and runs every call into user code.

Requests (HTTP and handle calls) hold a slot of `max_ongoing_requests` and the read side of the
writer lock; `reconfigure()` holds the write side, so requests wait while it runs (as Serve does).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from .api import ReplicaContext, set_replica_context
from .graph import find_node, import_target, resolve_args, to_application
from .handle import DeploymentHandle, Transport
from .request import Request
from .settings import Settings
from .sync import LoopThread, ReadWriteLock


class NotInitialized(RuntimeError):
    pass


class Replica:
    def __init__(self, settings: Settings, loop: LoopThread) -> None:
        self.settings = settings
        self._loop = loop
        self._transport = Transport(settings.router_url)
        self._target: Any = None
        self._is_function = False
        self.initialized = False
        self.started_at = time.monotonic()
        self.draining = False
        self.error: str | None = None
        self.user_config, self.user_config_hash = self._initial_config()
        self._rw = ReadWriteLock()
        self._slots = threading.Semaphore(settings.max_ongoing_requests)
        self._count_lock = threading.Lock()
        self.ongoing = 0
        self._health = concurrent.futures.ThreadPoolExecutor(1, "serve-health")

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

    def initialize(self) -> None:
        """Import, construct, first reconfigure, first health check (any raise: startup failed)."""
        s = self.settings
        root = to_application(import_target(s.import_path), s.args)
        node = find_node(root, s.deployment)
        args, kwargs = resolve_args(node, root, self._make_handle)
        dep = node.deployment
        self._is_function = dep.is_function
        self._target = dep.func_or_class if dep.is_function else dep.func_or_class(*args, **kwargs)
        tag = f"{s.deployment}#{s.replica}"
        set_replica_context(ReplicaContext(s.app, s.deployment, tag, self._target))
        if self.user_config is not None:
            self._apply_config(self.user_config)
        self.check_health()
        self.initialized = True

    def _make_handle(self, deployment: str) -> DeploymentHandle:
        return DeploymentHandle(self.settings.app, deployment, self._transport)

    def _apply_config(self, config: Any) -> None:
        method = None if self._is_function else getattr(self._target, "reconfigure", None)
        if method is None:
            raise ValueError(
                f"user_config is set but deployment {self.settings.deployment!r} "
                "has no reconfigure() method"
            )
        self._loop.invoke(method, config)

    # --- calls into user code --------------------------------------------------------------

    @contextlib.contextmanager
    def _request_slot(self) -> Iterator[None]:
        with self._count_lock:
            self.ongoing += 1
        try:
            with self._slots, self._rw.read():
                yield
        finally:
            with self._count_lock:
                self.ongoing -= 1

    def handle_request(self, request: Request) -> Any:
        with self._request_slot():
            return self._loop.invoke(self._method("__call__"), request)

    def call_method(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        with self._request_slot():
            return self._loop.invoke(self._method(name), *args, **kwargs)

    def _method(self, name: str) -> Any:
        if not self.initialized:
            raise NotInitialized(f"replica of {self.settings.deployment!r} is not initialized")
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

    def reconfigure(self, config: Any, config_hash: str) -> None:
        if not self.initialized:
            raise NotInitialized("replica is not initialized")
        with self._rw.write():
            if config_hash == self.user_config_hash:
                return
            if config is not None:
                self._apply_config(config)
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
            print(f"[serve] could not persist user_config: {exc}", flush=True)

    def check_health(self) -> None:
        """Run the user's check_health() with the configured timeout; raise when unhealthy."""
        method = None if self._is_function else getattr(self._target, "check_health", None)
        if method is None:
            return
        future = self._health.submit(self._loop.invoke, method)
        try:
            future.result(timeout=self.settings.health_check_timeout_s)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(
                f"check_health() did not return within {self.settings.health_check_timeout_s}s"
            ) from None

    # --- shutdown ----------------------------------------------------------------------------

    def drain(self) -> None:
        """Serve's loop: sleep first (routers drop us meanwhile), then wait for in-flight calls."""
        self.draining = True
        while True:
            time.sleep(self.settings.wait_loop_s)
            with self._count_lock:
                if self.ongoing == 0:
                    return

    def call_del(self) -> None:
        if self._is_function or self._target is None:
            return
        method = getattr(type(self._target), "__del__", None)
        if method is not None:
            self._loop.invoke(method, self._target)

    def state(self) -> dict[str, Any]:
        return {
            "initialized": self.initialized,
            "draining": self.draining,
            "ongoing": self.ongoing,
            "user_config_hash": self.user_config_hash,
            "error": self.error,
            "pid": os.getpid(),
        }
