"""Support for the API tests: a behavioural fake of the daemon's state (a mutable holder of
`Snapshot` values), an HTTP client that checks every answer against the OpenAPI document the
server ships, and the snapshots a daemon would write."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
from reconciler.pins import PinAnswer, PinState
from reconciler.records import Change, CommitInfo, Event, ReplicaEvent, ReplicaRow, TimelineEntry

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
    pins: FakePins | None = None

    def __post_init__(self) -> None:
        self.pins = FakePins(self)

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
        "pins": state.pins,
        "api_token": API_TOKEN,
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

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("delete", path, **kwargs)

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


# --- A behavioural model of the daemon's pin side (reconcile.pinning.PinControl) ------------

API_TOKEN = "t0ken-for-tests"
INVALID_ERRORS = (
    "serve_config.yaml:31:5: unknown key 'num_replica' (did you mean 'num_replicas'?)",
)


class FakePins:
    """Commits it knows (COMMIT_A valid, COMMIT_B invalid), the pin, and the snapshot it keeps
    in step (as the daemon's next pass would), so reads after a write agree with it."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.valid = {COMMIT_A: True, COMMIT_B: False}
        self.answers: list[PinAnswer] = []
        self.previous: str | None = COMMIT_A

    def _resolve(self, rev: str) -> str | None:
        found = [c for c in self.valid if len(rev) >= 4 and c.startswith(rev.lower())]
        return found[0] if len(found) == 1 else None

    def _show(self, pinned: str | None) -> None:
        snap = self.state.snapshot
        self.state.snapshot = replace(snap, commits=replace(snap.commits, pinned=pinned))

    def pin(self, rev: str, reason: str = "") -> PinAnswer:
        commit = self._resolve(rev)
        if commit is None:
            answer = PinAnswer(PinState.UNKNOWN, None, f"no commit {rev[:40]} on branch 'main'")
        elif not self.valid[commit]:
            text = f"commit {commit[:12]} was not pinned: its config is invalid (1 error)"
            answer = PinAnswer(PinState.REFUSED, commit, text, INVALID_ERRORS)
        else:
            self._show(commit)
            answer = PinAnswer(PinState.PINNED, commit, f"pinned commit {commit[:12]}")
        self.answers.append(answer)
        return answer

    def unpin(self) -> PinAnswer:
        pinned = self.state.snapshot.commits.pinned
        if pinned is None:
            return PinAnswer(PinState.NOT_PINNED, None, "nothing was pinned")
        self._show(None)
        return PinAnswer(PinState.UNPINNED, pinned, f"unpinned commit {pinned[:12]}")

    def rollback(self) -> PinAnswer:
        if self.previous is None:
            return PinAnswer(PinState.NO_PREVIOUS, None, "nothing to roll back to")
        return self.pin(self.previous, "rollback")

    def last(self) -> PinAnswer | None:
        return self.answers[-1] if self.answers else None


def dashboard_snapshot() -> Snapshot:
    """The single-application snapshot, pinned at A with the branch at B, with replicas, a
    timeline (one subject is hostile HTML) and events."""
    base = single_snapshot()
    rows = (
        ReplicaRow(
            "serve-t-default-MangoStand-0", 0, "v1aaaaaaaaaa", "RUNNING", 1700000000.0, True
        ),
        ReplicaRow(
            "serve-t-default-MangoStand-1",
            1,
            "v0bbbbbbbbbb",
            "UNHEALTHY",
            1700000001.0,
            False,
            "ValueError: price must be positive",
        ),
    )
    mango = replace(base.applications[0].deployments[0], replicas=rows, version="v1aaaaaaaaaa")
    app = replace(base.applications[0], deployments=(mango, *base.applications[0].deployments[1:]))
    timeline = (
        TimelineEntry(
            COMMIT_A,
            1700000300.0,
            Event.PINNED,
            CommitInfo("Ada", 1.0, "mango"),
            message="rollback from commit bbbbbbbbbbbb",
        ),
        TimelineEntry(
            COMMIT_B,
            1700000200.0,
            Event.INVALID,
            CommitInfo("Eve", 2.0, "<script>alert(1)</script>"),
            INVALID_ERRORS,
        ),
        TimelineEntry(
            COMMIT_A,
            1700000100.0,
            Event.APPLIED,
            CommitInfo("Ada", 1.0, "mango"),
            changes=(Change("default", "MangoStand", "reconfigure", ("user_config changed",)),),
        ),
    )
    events = (
        ReplicaEvent(
            1700000400.0,
            "default",
            "MangoStand",
            "serve-t-default-MangoStand-1",
            "unhealthy",
            "ValueError: price must be positive",
        ),
        ReplicaEvent(
            1700000350.0,
            "default",
            "MangoStand",
            "serve-t-default-MangoStand-0",
            "started",
            "version v1aaaaaaaaaa",
        ),
    )
    commits = replace(base.commits, pinned=COMMIT_A, pinned_at=1700000300.0,
                      pin_reason="rollback from commit bbbbbbbbbbbb")  # fmt: skip
    return replace(base, applications=(app,), commits=commits, timeline=timeline, events=events)
