"""Support for the API tests: a behavioural fake of the daemon's state (a mutable holder of
`Snapshot` values), an HTTP client that checks every answer against the OpenAPI document the
server ships, and the snapshots a daemon would write."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import requests
import yaml
from flask import Flask

from reconciler.api import ApiServer, create_app
from reconciler.api.routes import load_openapi
from reconciler.metrics import Metrics
from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
    Capacity,
    CommitStatus,
    DeploymentStatus,
    DeploymentStatusInfo,
    HistoryEntry,
    LoopStatus,
    Snapshot,
)

SECRET = "s3cret-for-tests"
BRANCH = "main"
MAX_WEBHOOK_BYTES = 64 * 1024
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40

OPENAPI = load_openapi()


@dataclass
class FakeState:
    """What the daemon would hand the API: a snapshot, history, health, and a trigger counter."""

    snapshot: Snapshot = field(default_factory=Snapshot)
    history: list[HistoryEntry] = field(default_factory=list)
    health: tuple[bool, str] = (True, "")
    triggers: int = 0
    history_limits: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def trigger(self) -> None:
        with self.lock:
            self.triggers += 1

    def get_history(self, limit: int) -> list[HistoryEntry]:
        self.history_limits.append(limit)
        return self.history[:limit]


def app_for(state: FakeState, **overrides: Any) -> Flask:
    """The real app reading `state`; keyword arguments override create_app's."""
    options: dict[str, Any] = {
        "snapshot": lambda: state.snapshot,
        "history": state.get_history,
        "trigger": state.trigger,
        "health": lambda: state.health,
        "metrics": Metrics(),
        "branch": BRANCH,
        "webhook_secret": SECRET,
        "max_webhook_bytes": MAX_WEBHOOK_BYTES,
    }
    options.update(overrides)
    return create_app(**options)


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def check_against_openapi(method: str, response: requests.Response) -> None:
    """Fail unless `response` is one the OpenAPI document declares, with a body of its schema."""
    path = urlsplit(response.url).path
    media = response.headers.get("Content-Type", "").split(";")[0].strip()
    operation = OPENAPI["paths"].get(path, {}).get(method)
    if operation is None:  # unknown path or method: the JSON error body, with no 5xx
        assert response.status_code in (404, 405), (path, method, response.status_code)
        _validate(response.json(), _pointer("components", "schemas", "Error"))
        return
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {path}: undeclared status {status}"
    declared = operation["responses"][status]
    assert media in declared["content"], f"{method} {path} {status}: undeclared type {media}"
    for name, header in declared.get("headers", {}).items():
        assert not header.get("required") or name in response.headers, name
    body = _parse(media, response.text)
    where = ("paths", path, method, "responses", status, "content", media, "schema")
    _validate(body, _pointer(*where))


def _parse(media: str, text: str) -> Any:
    if media == "application/json":
        return json.loads(text)
    if media == "application/yaml":
        return yaml.safe_load(text)
    return text


def _validate(body: Any, pointer: str) -> None:
    # The document itself is the root schema, so its "#/components/..." references resolve.
    root = {**OPENAPI, "$ref": pointer}
    jsonschema.Draft202012Validator(root).validate(body)


class ApiClient:
    """requests against the live server; every answer is checked against the OpenAPI document."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("get", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("post", path, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(method.upper(), self.base_url + path, timeout=10, **kwargs)
        check_against_openapi(method, response)
        return response


@dataclass
class LiveApi:
    state: FakeState
    metrics: Metrics
    server: ApiServer
    client: ApiClient

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


MakeApi = Callable[..., LiveApi]


# --- Snapshots a daemon would write -------------------------------------------------------


def _deployment(name: str, running: int, target: int) -> DeploymentStatusInfo:
    status = DeploymentStatus.HEALTHY if running == target else DeploymentStatus.UPDATING
    states = (("RUNNING", running),) + (
        (("STARTING", target - running),) if target > running else ()
    )
    return DeploymentStatusInfo(
        name=name, status=status, target_replicas=target, replica_states=tuple(sorted(states))
    )


FRUIT_DEPLOYMENTS = (
    _deployment("MangoStand", 2, 2),
    _deployment("OrangeStand", 1, 1),
    _deployment("PearStand", 1, 3),
    _deployment("FruitMarket", 2, 2),
)

SINGLE_DOCUMENT = {
    "import_path": "fruit:deployment_graph",
    "runtime_env": {"working_dir": "fruit", "env_vars": {"TOKEN": "<redacted>"}},
    "deployments": [{"name": "MangoStand", "num_replicas": 2, "user_config": {"price": 3}}],
}

MULTI_DOCUMENT = {
    "http_options": {"host": "0.0.0.0", "port": 8000},
    "applications": [
        {
            "name": "fruit",
            "route_prefix": "/fruit",
            "import_path": "fruit:graph",
            "deployments": [{"name": "MangoStand", "num_replicas": 2}],
        },
        {"name": "hello", "route_prefix": "/hello", "import_path": "hello:app"},
    ],
}


def single_snapshot() -> Snapshot:
    app = ApplicationStatusInfo(
        name="default",
        status=ApplicationStatus.DEPLOYING,
        message="rolling out PearStand",
        deployment_timestamp=1700000000.5,
        route_prefix="/",
        deployments=FRUIT_DEPLOYMENTS,
    )
    return Snapshot(
        shape="single",
        applications=(app,),
        commits=CommitStatus(
            applied=COMMIT_A,
            applied_document=SINGLE_DOCUMENT,
            applied_at=1700000000.5,
            latest=COMMIT_B,
            attempted=COMMIT_B,
            outcome="invalid",
            errors=("serve.yaml:4:7: num_replicas must be >= 0",),
        ),
        loop=LoopStatus(last_pass_at=1700000100.0, last_pass_duration_s=0.2, passes=7),
        capacity=Capacity(cores=2, cpus=8, memory=8 << 30, max_replicas=200),
    )


def multi_snapshot() -> Snapshot:
    fruit = ApplicationStatusInfo(
        name="fruit",
        status=ApplicationStatus.RUNNING,
        deployment_timestamp=1700000000.0,
        route_prefix="/fruit",
        deployments=FRUIT_DEPLOYMENTS[:2],
    )
    hello = ApplicationStatusInfo(
        name="hello",
        status=ApplicationStatus.UNHEALTHY,
        message="Hello: replica crashed",
        route_prefix="/hello",
        deployments=(
            DeploymentStatusInfo(
                "Hello", DeploymentStatus.UNHEALTHY, "exit code 1", 1, (("FAILED", 1),)
            ),
        ),
    )
    return Snapshot(
        shape="multi",
        applications=(fruit, hello),
        commits=CommitStatus(
            applied=COMMIT_A,
            applied_document=MULTI_DOCUMENT,
            latest=COMMIT_A,
            attempted=COMMIT_A,
            outcome="applied",
        ),
        loop=LoopStatus(
            engine_error="Docker engine unreachable", last_pass_at=1700000200.0, passes=3
        ),
        pending_replicas=1,
    )
