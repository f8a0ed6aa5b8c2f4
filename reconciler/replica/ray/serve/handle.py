"""`from ray.serve.handle import DeploymentHandle`, as user code type hints often write it."""

from serve_replica.handle import (
    DeploymentHandle,
    DeploymentResponse,
    DeploymentResponseGenerator,
)

__all__ = ["DeploymentHandle", "DeploymentResponse", "DeploymentResponseGenerator"]
