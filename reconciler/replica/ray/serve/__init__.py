"""The user-facing `from ray import serve` API, backed by the replica runtime."""

from serve_replica.api import Application, Deployment, deployment, get_replica_context
from serve_replica.handle import DeploymentHandle, DeploymentResponse, RemoteCallError
from serve_replica.request import Request

__all__ = [
    "Application",
    "Deployment",
    "DeploymentHandle",
    "DeploymentResponse",
    "RemoteCallError",
    "Request",
    "deployment",
    "get_replica_context",
]
