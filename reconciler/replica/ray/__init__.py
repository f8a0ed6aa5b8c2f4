"""A minimal `ray` shim inside replica containers: `ray.serve`, and the driver calls a Serve file
makes at module level (`ray.init()`, `ray.shutdown()`), which do nothing here."""

from serve_replica.driver import ray_init as init
from serve_replica.driver import ray_is_initialized as is_initialized
from serve_replica.driver import ray_shutdown as shutdown

from . import serve

__all__ = ["init", "is_initialized", "serve", "shutdown"]
