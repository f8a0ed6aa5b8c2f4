"""The user-facing `from ray import serve` API, backed by the replica runtime."""

from serve_replica.api import Application, Deployment, deployment, ingress
from serve_replica.batching import batch
from serve_replica.context import get_multiplexed_model_id, get_replica_context
from serve_replica.driver import delete, run, shutdown, start, status
from serve_replica.handle import (
    DeploymentHandle,
    DeploymentResponse,
    DeploymentResponseGenerator,
    RemoteCallError,
    get_app_handle,
    get_deployment_handle,
)
from serve_replica.multiplex import multiplexed

from . import handle

__all__ = [
    "Application",
    "Deployment",
    "DeploymentHandle",
    "DeploymentResponse",
    "DeploymentResponseGenerator",
    "RemoteCallError",
    "batch",
    "delete",
    "deployment",
    "get_app_handle",
    "get_deployment_handle",
    "get_multiplexed_model_id",
    "get_replica_context",
    "handle",
    "ingress",
    "multiplexed",
    "run",
    "shutdown",
    "start",
    "status",
]
