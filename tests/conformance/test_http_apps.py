"""Conformance, HTTP side: requests as Serve passes them, return values and starlette responses,
streaming, FastAPI/Starlette/ASGI ingress under a route prefix, replica context, logging and
the driver part of a Serve file. One config, one reconciler for the whole module."""

from __future__ import annotations

import json
import time

import pytest
import requests
from conformance_support import App, Deployed

pytestmark = pytest.mark.docker

APPS = [
    App("request_json", "request_json:app"),
    App("request_body", "request_body:app"),
    App("request_parts", "request_parts:app"),
    App("zero_arg", "zero_arg:app"),
    App("function_sync", "function_deployment:app"),
    App("function_async", "function_deployment:async_app"),
    App("form_data", "form_data:app"),
    App("return_values", "return_values:app"),
    App("starlette_responses", "starlette_responses:app"),
    App("streaming_response", "streaming_response:app"),
    App("async_generator", "generators:app"),
    App("sync_generator", "generators:sync_app"),
    App("fastapi_basic", "fastapi_basic:app"),
    App("fastapi_models", "fastapi_models:app"),
    App("fastapi_errors", "fastapi_errors:app"),
    App("fastapi_prefix", "fastapi_prefix:app", prefix="/v1/api"),
    App("starlette_ingress", "starlette_ingress:app"),
    App("asgi_ingress", "asgi_ingress:app"),
    App("asgi_builder", "asgi_ingress:builder_app"),
    App("replica_context", "replica_context:app"),
    App("logging_app", "logging_app:app"),
    App("driver_code", "driver_code:app"),
]
FILES = sorted({app.import_path.split(":")[0] + ".py" for app in APPS})


@pytest.fixture(scope="module")
def d(deployed_module: Deployed) -> Deployed:
    return deployed_module


def test_request_json_with_await(d: Deployed) -> None:
    r = d.post("request_json", json={"numbers": [1, 2, 3.5]})
    assert r.status_code == 200 and r.json() == {"sum": 6.5, "count": 3}
    assert r.headers["content-type"] == "application/json"


def test_request_body_bytes(d: Deployed) -> None:
    r = d.post("request_body", data=b"\x00abc")
    assert r.content == b"cba\x00" and r.headers["content-type"] == "text/plain"


def test_request_parts_query_headers_url(d: Deployed) -> None:
    r = d.get("request_parts", "/deep/path?tag=a&tag=b&x=1", headers={"X-Agent": "007"})
    assert r.json() == {
        "method": "GET",
        "path": "/request_parts/deep/path",
        "query": {"tag": "b", "x": "1"},
        "tags": ["a", "b"],
        "agent": "007",
        "path_params": {},
    }
    # Serve's request id: the client's is honoured and returned, else one is made
    assert (
        d.get("request_parts", headers={"X-Request-Id": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    assert len(d.get("request_parts").headers["x-request-id"]) >= 16


def test_zero_arg_call_and_bound_arguments(d: Deployed) -> None:
    assert d.get("zero_arg").text == "hello, world"


def test_function_deployments_sync_and_async(d: Deployed) -> None:
    assert d.get("function_sync", "?word=hi").text == "HI!"
    assert d.post("function_async", json=[1, 2]).json() == {"doubled": [2, 4]}


def test_form_data_urlencoded_and_multipart(d: Deployed) -> None:
    assert d.post("form_data", data={"a": "1", "b": "two"}).json() == {"a": "1", "b": "two"}
    r = d.post("form_data", data={"kind": "upload"}, files={"f": ("notes.txt", b"x" * 1000)})
    assert r.json() == {"kind": "upload", "f": {"filename": "notes.txt", "size": 1000}}


def test_return_values_as_serve_encodes_them(d: Deployed) -> None:
    r = d.get("return_values", "?kind=str")
    assert (r.text, r.headers["content-type"]) == ("plain text", "text/plain; charset=utf-8")
    assert d.get("return_values", "?kind=bytes").content == b"\x00\x01raw"
    assert d.get("return_values", "?kind=list").json() == [1, "two", {"three": 3}]
    assert d.get("return_values", "?kind=none").content == b""
    assert d.get("return_values", "?kind=x").json() == {"kind": "x", "nested": {"ok": True}}


def test_starlette_responses_status_and_headers(d: Deployed) -> None:
    r = d.get("starlette_responses", "?kind=created")
    assert (r.status_code, r.json(), r.headers["x-item"]) == (201, {"id": 7}, "7")
    r = d.get("starlette_responses", "?kind=teapot")
    assert (r.status_code, r.text) == (418, "short and stout")
    assert d.get("starlette_responses", "?kind=empty").status_code == 204
    r = d.get("starlette_responses", "?kind=redirect", allow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "/elsewhere")
    r = d.get("starlette_responses")
    assert r.headers["content-type"].startswith("text/html") and r.text == "<p>hi</p>"


def test_streaming_response_first_chunk_before_the_generator_ends(d: Deployed) -> None:
    with requests.get(d.url("streaming_response"), stream=True, timeout=30) as r:
        lines = r.iter_lines()
        assert next(lines) == b"first"  # the generator now waits for /release
        assert d.get("streaming_response", "/release").text == "released"
        rest = list(lines)
    assert rest == [b"after-release 0", b"after-release 1", b"after-release 2"]
    assert r.headers.get("transfer-encoding") == "chunked"


def test_generators_from_http_handlers_stream(d: Deployed) -> None:
    start = time.monotonic()
    with requests.get(d.url("async_generator", "?n=4"), stream=True, timeout=30) as r:
        lines = r.iter_lines()
        first = next(lines)
        first_at = time.monotonic() - start
        rest = list(lines)
    total = time.monotonic() - start
    assert [first, *rest] == [b"0", b"1", b"2", b"3"]
    assert first_at < total  # the first line came before the last
    assert d.get("sync_generator", "?n=3").text == "tick 0\ntick 1\ntick 2\n"


def test_fastapi_routes_path_and_query_params(d: Deployed) -> None:
    assert d.get("fastapi_basic").json() == {"books": 2, "started": ["startup event ran"]}
    assert d.get("fastapi_basic", "/books/1").json() == {"id": 1, "title": "Dune"}
    assert d.get("fastapi_basic", "/books/2?upper=true").json() == {"id": 2, "title": "EMMA"}
    assert requests.delete(d.url("fastapi_basic", "/books/2"), timeout=10).json() == {
        "removed": "Emma"
    }
    assert d.get("fastapi_basic", "/books/abc").status_code == 422  # not an int
    assert d.get("fastapi_basic", "/nowhere").status_code == 404


def test_fastapi_pydantic_body_and_response_model(d: Deployed) -> None:
    r = d.post("fastapi_models", "/orders", json={"item": "pen", "quantity": 4})
    assert r.status_code == 200 and r.json() == {"item": "pen", "total": 10.0}  # secret dropped
    bad = d.post("fastapi_models", "/orders", json={"item": "pen"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "quantity"


def test_fastapi_http_exceptions(d: Deployed) -> None:
    r = d.get("fastapi_errors", "/items/missing")
    assert (r.status_code, r.json()) == (404, {"detail": "missing not found"})
    r = d.get("fastapi_errors", "/items/teapot")
    assert (r.status_code, r.headers["x-why"]) == (418, "tea")
    assert d.get("fastapi_errors", "/items/crash").status_code == 500
    assert d.get("fastapi_errors", "/items/fine").json() == {"name": "fine"}


def test_fastapi_routes_relative_to_the_route_prefix(d: Deployed) -> None:
    r = requests.get(d.base + "/v1/api/items/42", timeout=10)
    body = r.json()
    assert body["item"] == "42" and body["root_path"] == "/v1/api"
    assert body["self_url"].endswith("/v1/api/items/42")
    assert requests.get(d.base + "/v1/api", timeout=10).json() == "root of the prefix"


def test_starlette_and_bare_asgi_ingress(d: Deployed) -> None:
    assert d.get("starlette_ingress", "/hello/ann").text == "hello ann"
    assert d.post("starlette_ingress", "/echo", json={"a": [1]}).json() == {"echo": {"a": [1]}}
    body = d.get("asgi_ingress", "/some/where").json()
    assert body["root_path"] == "/asgi_ingress" and body["via"] == "object"
    assert body["path"].endswith("/some/where")
    # a function given to serve.ingress is a builder, called in the replica (as Serve does)
    assert d.get("asgi_builder", "/x").json()["via"] == "builder"


def test_replica_context(d: Deployed) -> None:
    body = d.get("replica_context").json()
    assert body["app_name"] == "replica_context" and body["deployment"] == "WhoAmI"
    assert body["replica_tag"] == body["unique_id"] and len(body["unique_id"]) == 8
    assert body["deployment_id"] == ["WhoAmI", "replica_context"]
    assert body["servable"] == "WhoAmI"


def test_logs_reach_docker_logs_in_serves_format(d: Deployed) -> None:
    r = d.get("logging_app", "?word=kiwi", headers={"X-Request-Id": "req-kiwi-1"})
    assert r.text == "kiwi"

    def logged() -> list[str]:
        text = d.logs("logging_app", "Chatty")
        return [line for line in text.splitlines() if "kiwi" in line]

    from tests.support import wait_for

    lines = wait_for(lambda: len(logged()) >= 2 and logged(), timeout=10, what="log lines")
    serve_line = next(line for line in lines if "serve logger says kiwi" in line)
    own_line = next(line for line in lines if "module logger says kiwi" in line)
    assert serve_line.startswith("INFO ") and own_line.startswith("WARNING ")
    for line in (serve_line, own_line):
        assert "logging_app_Chatty" in line and "req-kiwi-1" in line


def test_driver_calls_are_noops_inside_a_replica(d: Deployed) -> None:
    assert d.get("driver_code").json() == {"ray_initialized": True}
    logs = d.logs("driver_code", "Local")
    assert "serve.run() does nothing inside a replica" in logs
    assert "ray.init() does nothing inside a replica" in logs


def test_json_of_control_contract_unchanged(d: Deployed) -> None:
    (replica,) = [r for r in d.harness.replicas("Summer")]
    assert replica.control_url
    state = requests.get(replica.control_url + "/-/state", timeout=5).json()
    assert state["initialized"] is True and state["starlette"] is True
    assert json.loads(requests.get(replica.control_url + "/-/ready", timeout=5).text) == {
        "ready": True
    }
