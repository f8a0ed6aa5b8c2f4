"""`ray.serve.exceptions`: the exception types user code catches."""

from serve_replica.wire import RemoteCallError


class RayServeException(Exception):
    pass


class BackPressureError(RayServeException):
    pass


__all__ = ["BackPressureError", "RayServeException", "RemoteCallError"]
