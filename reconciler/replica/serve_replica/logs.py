"""Logging as Serve's replicas log: `logging.getLogger("ray.serve")` and the user's own loggers
reach stderr (what `docker logs` shows) as

  LEVEL 2026-01-02 03:04:05,678 app_Deployment replicaid request-id /route file.py:12 -- message

Request id and route come from the request being served (blank outside one). Traceback lines
of a logged exception are indented, so they are never read as the replica's fatal error (the
engine takes the exception line after the last unindented "Traceback" header).
"""

from __future__ import annotations

import logging
import sys

from .context import current_request

_FIELDS = "%(levelname)s %(asctime)s %(serve_component)s %(serve_replica)s "


class _RequestFields(logging.Filter):
    def __init__(self, component: str, replica: str) -> None:
        super().__init__()
        self.component, self.replica = component, replica

    def filter(self, record: logging.LogRecord) -> bool:
        request = current_request()
        record.serve_component = self.component
        record.serve_replica = self.replica
        record.serve_request = (
            f"{request.request_id} {request.route or '-'} " if request.request_id else ""
        )
        return True


class ServeFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(_FIELDS + "%(serve_request)s%(filename)s:%(lineno)d -- %(message)s")

    def formatException(self, ei: object) -> str:
        text = super().formatException(ei)  # type: ignore[arg-type]
        return "\n".join("    " + line for line in text.splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("    " + line for line in stack_info.splitlines())


def setup_replica(app: str, deployment: str, replica_id: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestFields(f"{app}_{deployment}", replica_id))
    handler.setFormatter(ServeFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("ray.serve").setLevel(logging.INFO)


def setup_describe() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s -- %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
