"""A minimal `ray` shim inside replica containers: only `ray.serve` is provided."""

from . import serve

__all__ = ["serve"]
