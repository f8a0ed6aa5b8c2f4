"""Who and what is running: the replica's identity (`serve.get_replica_context()`) and the
per-request context (request id, multiplexed model id, route) carried in contextvars, so sync
handlers on worker threads and async ones on the loop each see their own request."""

from __future__ import annotations

import contextvars
import secrets
import string
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DeploymentID:
    name: str
    app_name: str = "default"

    def to_replica_actor_class_name(self) -> str:
        return f"ServeReplica:{self.app_name}:{self.name}"


@dataclass(frozen=True)
class ReplicaID:
    unique_id: str
    deployment_id: DeploymentID

    def to_full_id_str(self) -> str:
        return f"{self.deployment_id.app_name}#{self.deployment_id.name}#{self.unique_id}"


@dataclass
class ReplicaContext:
    """Serve's replica context: `app_name`, `deployment`, `replica_tag`, `replica_id`,
    `servable_object` (the instance or function this replica runs)."""

    replica_id: ReplicaID
    servable_object: Any = None
    replica_index: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def app_name(self) -> str:
        return self.replica_id.deployment_id.app_name

    @property
    def deployment(self) -> str:
        return self.replica_id.deployment_id.name

    @property
    def replica_tag(self) -> str:
        return self.replica_id.unique_id


def new_unique_id() -> str:
    """Eight random lowercase letters and digits, the shape of Serve's replica ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


_replica: list[ReplicaContext] = []  # set once per process by the runtime
_ingress: dict[str, str] = {}  # application -> its ingress deployment, as far as known here


def set_ingress(app: str, deployment: str) -> None:
    _ingress[app] = deployment


def ingress_of(app: str) -> str | None:
    return _ingress.get(app)


def set_replica_context(ctx: ReplicaContext) -> None:
    _replica[:] = [ctx]


def current_replica() -> ReplicaContext | None:
    return _replica[0] if _replica else None


def get_replica_context() -> ReplicaContext:
    if not _replica:
        raise RuntimeError(
            "`serve.get_replica_context()` may only be called from within a Serve replica"
        )
    return _replica[0]


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    multiplexed_model_id: str = ""
    route: str = ""
    app_name: str = ""


NO_REQUEST = RequestContext()
_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "serve_request", default=None
)


def current_request() -> RequestContext:
    return _request.get() or NO_REQUEST


def set_request(ctx: RequestContext) -> contextvars.Token[RequestContext | None]:
    return _request.set(ctx)


def reset_request(token: contextvars.Token[RequestContext | None]) -> None:
    _request.reset(token)


def get_multiplexed_model_id() -> str:
    """`serve.get_multiplexed_model_id()`: the model id of the request being served ("" if
    the request named none)."""
    return current_request().multiplexed_model_id
