"""The read endpoints over real HTTP: /status, /config, /history, /healthz, /metrics,
/openapi.json, in both formats, before and after the first deploy. Every answer is checked against
the OpenAPI document by the client (see api_support.ApiClient)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import requests
import yaml
from api_support import (
    COMMIT_A,
    COMMIT_B,
    MULTI_DOCUMENT,
    OPENAPI,
    SINGLE_DOCUMENT,
    LiveApi,
    MakeApi,
    multi_snapshot,
    single_snapshot,
)

from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
    CommitStatus,
    EngineNode,
    HistoryEntry,
    LoopStatus,
    Snapshot,
)

YAML_WAYS = [
    {"params": {"format": "yaml"}},
    {"headers": {"Accept": "application/yaml"}},
    {"headers": {"Accept": "text/yaml"}},
]


def test_openapi_document_is_valid_and_served(api: LiveApi) -> None:
    # Until pyproject's test extra lists openapi-spec-validator, a fresh machine may lack it.
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(OPENAPI)
    response = api.client.get("/openapi.json")
    assert response.json() == OPENAPI


# --- /status ---------------------------------------------------------------------------------


def test_status_before_first_deploy_is_not_started(api: LiveApi) -> None:
    body = api.client.get("/status").json()
    assert body["app_status"] == {"status": "NOT_STARTED", "message": "", "deployment_timestamp": 0}
    assert body["deployment_statuses"] == []
    assert body["name"] == ""
    assert body["applied_commit"] is None


def test_status_single_keeps_the_seed_shape(api: LiveApi) -> None:
    api.state.snapshot = single_snapshot()
    response = api.client.get("/status")
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body)[:3] == ["name", "app_status", "deployment_statuses"]
    assert body["name"] == "default"
    assert body["app_status"] == {
        "status": "DEPLOYING",
        "message": "rolling out PearStand",
        "deployment_timestamp": 1700000000.5,
    }
    pear = body["deployment_statuses"][2]
    assert pear == {
        "name": "PearStand",
        "status": "UPDATING",
        "message": "",
        "replicas": {"target": 3, "RUNNING": 1, "STARTING": 2},
    }
    assert [d["name"] for d in body["deployment_statuses"]] == [
        "MangoStand",
        "OrangeStand",
        "PearStand",
        "FruitMarket",
    ]
    assert (body["applied_commit"], body["latest_commit"]) == (COMMIT_A, COMMIT_B)
    assert (body["attempted_commit"], body["attempt_outcome"]) == (COMMIT_B, "invalid")
    assert body["errors"] == ["serve.yaml:4:7: num_replicas must be >= 0"]
    assert body["last_pass_at"] == 1700000100.0


def test_status_deploy_failed_before_any_good_commit(api: LiveApi) -> None:
    failed = ApplicationStatusInfo(
        name="", status=ApplicationStatus.DEPLOY_FAILED, message="serve.yaml:1:1: not a mapping"
    )
    api.state.snapshot = Snapshot(
        applications=(failed,),
        commits=CommitStatus(
            latest=COMMIT_B,
            attempted=COMMIT_B,
            outcome="invalid",
            errors=("serve.yaml:1:1: not a mapping",),
        ),
    )
    body = api.client.get("/status").json()
    assert body["app_status"]["status"] == "DEPLOY_FAILED"
    assert body["errors"] == ["serve.yaml:1:1: not a mapping"]


def test_status_multi_has_one_entry_per_application(api: LiveApi) -> None:
    api.state.snapshot = multi_snapshot()
    body = api.client.get("/status").json()
    assert [a["name"] for a in body["applications"]] == ["fruit", "hello"]
    hello = body["applications"][1]
    assert hello["route_prefix"] == "/hello"
    assert hello["app_status"]["status"] == "UNHEALTHY"
    assert hello["deployment_statuses"] == [
        {
            "name": "Hello",
            "status": "UNHEALTHY",
            "message": "exit code 1",
            "replicas": {"target": 1, "FAILED": 1},
        }
    ]
    assert body["engine_error"] == "Docker engine unreachable"
    assert "app_status" not in body


def test_status_lists_a_swarms_nodes_and_says_which_is_down(api: LiveApi) -> None:
    down = EngineNode("lab-node3", "10.199.0.13", "down", False, "heartbeat failure", "worker")
    up = EngineNode("lab-node1", "10.199.0.11", "ready", True, role="manager", replicas=3)
    api.state.snapshot = dataclasses.replace(single_snapshot(), nodes=(up, down))
    nodes = api.client.get("/status").json()["nodes"]  # checked against the OpenAPI document
    assert [(n["name"], n["ready"], n["replicas"]) for n in nodes] == [
        ("lab-node1", True, 3),
        ("lab-node3", False, 0),
    ]
    assert nodes[1]["message"] == "heartbeat failure"
    api.state.snapshot = single_snapshot()  # a single host has no nodes
    assert api.client.get("/status").json()["nodes"] == []


@pytest.mark.parametrize("how", YAML_WAYS)
def test_status_as_yaml(api: LiveApi, how: dict[str, dict[str, str]]) -> None:
    api.state.snapshot = single_snapshot()
    response = api.client.get("/status", **how)
    assert response.headers["Content-Type"].startswith("application/yaml")
    assert response.text.startswith("name: default\napp_status:\n  status: DEPLOYING\n")
    assert yaml.safe_load(response.text) == api.client.get("/status").json()


def test_status_reads_the_latest_snapshot_each_time(api: LiveApi) -> None:
    api.state.snapshot = single_snapshot()
    assert api.client.get("/status").json()["passes"] == 7
    api.state.snapshot = dataclasses.replace(single_snapshot(), loop=LoopStatus(passes=8))
    assert api.client.get("/status").json()["passes"] == 8


@pytest.mark.parametrize("query", ["format=xml", "format="])
def test_unknown_format_is_400(api: LiveApi, query: str) -> None:
    response = api.client.get(f"/status?{query}")
    assert response.status_code == 400
    assert "format must be json or yaml" in response.json()["error"]


def test_accept_header_without_yaml_gets_json(api: LiveApi) -> None:
    response = api.client.get("/status", headers={"Accept": "text/html, */*;q=0.1"})
    assert response.headers["Content-Type"].startswith("application/json")


# --- /config ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", [{}, *YAML_WAYS])
def test_config_before_first_deploy_is_404(api: LiveApi, how: dict[str, dict[str, str]]) -> None:
    response = api.client.get("/config", **how)
    assert response.status_code == 404
    assert response.json()["error"] == "no config has been applied yet"


def test_config_404_says_what_was_attempted(api: LiveApi) -> None:
    api.state.snapshot = Snapshot(
        commits=CommitStatus(
            attempted=COMMIT_B, outcome="invalid", errors=("serve.yaml:2:3: unknown key",)
        )
    )
    body = api.client.get("/config").json()
    assert (body["attempted_commit"], body["attempt_outcome"]) == (COMMIT_B, "invalid")


def test_config_json_carries_commit_in_body_and_header(api: LiveApi) -> None:
    api.state.snapshot = single_snapshot()
    response = api.client.get("/config")
    assert response.headers["X-Serve-Commit"] == COMMIT_A
    assert response.json() == {"commit": COMMIT_A, "config": SINGLE_DOCUMENT}


@pytest.mark.parametrize("how", YAML_WAYS)
def test_config_yaml_is_the_document_headed_by_the_commit(
    api: LiveApi, how: dict[str, dict[str, str]]
) -> None:
    api.state.snapshot = multi_snapshot()
    response = api.client.get("/config", **how)
    assert response.headers["X-Serve-Commit"] == COMMIT_A
    assert response.text.splitlines()[0] == f"# commit {COMMIT_A}"
    assert response.text.splitlines()[1] == "http_options:"
    assert yaml.safe_load(response.text) == MULTI_DOCUMENT


# --- /history --------------------------------------------------------------------------------


def _history() -> list[HistoryEntry]:
    return [
        HistoryEntry(
            f"{i:040x}", 1700000000.0 + i, "applied" if i % 3 else "invalid", f"deploy {i}"
        )
        for i in range(30)
    ]


def test_history_is_newest_first_with_default_limit(api: LiveApi) -> None:
    api.state.history = _history()
    body = api.client.get("/history").json()
    assert len(body) == 20
    assert [e["received_at"] for e in body] == sorted(
        (e["received_at"] for e in body), reverse=True
    )
    assert body[0] == {
        "commit": f"{19:040x}",
        "received_at": 1700000019.0,
        "outcome": "applied",
        "message": "deploy 19",
    }
    assert api.state.history_limits == [20]


def test_history_limit_and_yaml(api: LiveApi) -> None:
    api.state.history = _history()
    response = api.client.get("/history", params={"limit": "2", "format": "yaml"})
    entries = yaml.safe_load(response.text)
    assert [e["message"] for e in entries] == ["deploy 1", "deploy 0"]


def test_history_empty(api: LiveApi) -> None:
    assert api.client.get("/history").json() == []


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", "1.5", "٣"])
def test_history_bad_limit_is_400(api: LiveApi, limit: str) -> None:
    response = api.client.get("/history", params={"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()["error"]


# --- /healthz, /metrics ----------------------------------------------------------------------


def test_healthz_ok(api: LiveApi) -> None:
    response = api.client.get("/healthz")
    assert (response.status_code, response.json()["status"]) == (200, "ok")


def test_healthz_unhealthy_is_503_with_reason(api: LiveApi) -> None:
    api.state.health = (False, "no pass finished for 312 s (interval 30 s)")
    response = api.client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unhealthy",
        "message": "no pass finished for 312 s (interval 30 s)",
    }


def test_healthz_probe_that_raises_is_503_not_500(make_api: MakeApi) -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    live = make_api(health=broken)
    response = live.client.get("/healthz")
    assert response.status_code == 503
    assert "RuntimeError" in response.json()["message"]


def test_metrics_show_what_was_recorded(api: LiveApi) -> None:
    api.metrics.pass_finished(0.42, "ok")
    api.metrics.pass_finished(3.0, "transient")
    api.metrics.failure("engine")
    api.metrics.poll_error()
    api.metrics.set_applied_commit(COMMIT_A)
    api.metrics.set_replicas({("fruit", "MangoStand", "RUNNING"): 2})
    response = api.client.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert 'serve_reconciler_passes_total{outcome="ok"} 1.0' in text
    assert 'serve_reconciler_passes_total{outcome="transient"} 1.0' in text
    assert "serve_reconciler_pass_duration_seconds_count 2.0" in text
    assert 'serve_reconciler_failures_total{kind="engine"} 1.0' in text
    assert "serve_reconciler_poll_errors_total 1.0" in text
    assert f'serve_reconciler_applied_commit_info{{commit="{COMMIT_A}"}} 1.0' in text
    assert (
        'serve_reconciler_replicas{app="fruit",deployment="MangoStand",state="RUNNING"} 2.0' in text
    )


# --- errors: unknown paths, wrong methods, never a 500 -------------------------------------


def test_unknown_path_is_404_json(api: LiveApi) -> None:
    response = api.client.get("/api/serve/applications/")
    assert response.status_code == 404
    assert "/status" in response.json()["endpoints"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/status"),
        ("delete", "/config"),
        ("get", "/webhook"),
        ("put", "/metrics"),
        ("options", "/status"),
    ],
)
def test_wrong_method_is_405_json(api: LiveApi, method: str, path: str) -> None:
    response = api.client.request(method, path)
    assert response.status_code == 405
    assert response.json()["error"].startswith(f"method {method.upper()} is not allowed")
    assert "Allow" in response.headers


def test_a_failing_snapshot_is_a_json_500_without_traceback(make_api: MakeApi) -> None:
    def broken() -> Snapshot:
        raise RuntimeError("secret internals")

    live = make_api(snapshot=broken)
    response = requests.get(live.url + "/status", timeout=10)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error; see the reconciler's log"}
    assert "Traceback" not in response.text and "secret internals" not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/status?format=%ff",
        "/%ff%fe",
        "/history?limit=%00",
        "/config?format=yaml&format=json",
        "/" + "a" * 4000,
    ],
)
def test_odd_requests_never_500(api: LiveApi, path: str) -> None:
    response = requests.get(api.url + path, timeout=10)
    assert response.status_code < 500
    json.loads(response.text)


def test_server_reports_its_port_and_stops(make_api: MakeApi) -> None:
    live = make_api()
    assert live.server.port > 0
    live.server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(live.url + "/healthz", timeout=5)


def test_the_openapi_check_itself_rejects_an_undocumented_answer() -> None:
    from api_support import check_against_openapi
    from jsonschema import ValidationError

    fake = requests.Response()
    fake.status_code, fake.url = 200, "http://127.0.0.1:1/status"
    fake.headers["Content-Type"] = "application/json"
    fake._content = json.dumps({"name": 1}).encode()
    with pytest.raises(ValidationError):
        check_against_openapi("get", fake)
    fake.status_code = 418
    with pytest.raises(AssertionError, match="undeclared status 418"):
        check_against_openapi("get", fake)


def test_stop_lets_a_request_in_flight_finish(make_api: MakeApi) -> None:
    import threading
    import time

    entered, release = threading.Event(), threading.Event()

    def slow_history(limit: int) -> list[HistoryEntry]:  # a worker's request (sqlite)
        entered.set()
        release.wait(10)
        return []

    live = make_api(history=slow_history)
    answers: list[int] = []
    client = threading.Thread(
        target=lambda: answers.append(requests.get(live.url + "/history", timeout=10).status_code)
    )
    client.start()
    assert entered.wait(10)
    stopper = threading.Thread(target=live.server.stop)
    stopper.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # stop has closed the listening socket
        try:
            requests.get(live.url + "/healthz", timeout=1)
        except requests.ConnectionError:
            break
    else:
        pytest.fail("the server kept accepting connections while stopping")
    release.set()
    client.join(10)
    stopper.join(10)
    assert answers == [200]
    assert not stopper.is_alive()
