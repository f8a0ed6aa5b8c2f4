"""The replica runtime as a local process (no Docker): the HTTP contract, user-code calls,
reconfigure, health, startup failure, max_ongoing_requests and the SIGTERM drain."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runtime_support import LocalReplica, call_json, http, wait_until

Start = Callable[..., LocalReplica]


def test_calls_reconfigure_and_state(local_replica: Start) -> None:
    r = local_replica("Stand", SERVE_USER_CONFIG='{"price": 3}', SERVE_USER_CONFIG_HASH="h1")
    r.wait_ready()
    assert http(r.url + "/-/ready")[0] == 200
    assert call_json(r.url + "/-/call/default/Stand/check_price", {"args": [2]}) == (
        200,
        {"result": 6},
    )
    assert call_json(r.url + "/-/call/default/Stand/async_price", {"kwargs": {"amount": 3}})[1] == {
        "result": 9
    }
    status, body = call_json(
        r.url + "/-/reconfigure", {"user_config": {"price": 5}, "user_config_hash": "h2"}
    )
    assert (status, body) == (200, {"user_config_hash": "h2"})
    assert call_json(r.url + "/-/call/default/Stand/check_price", {"args": [2]})[1] == {
        "result": 10
    }
    state = r.state() or {}
    assert state["user_config_hash"] == "h2" and state["ongoing"] == 0 and not state["draining"]


def test_reconfigure_error_keeps_old_config(local_replica: Start) -> None:
    r = local_replica("Stand", SERVE_USER_CONFIG='{"price": 3}', SERVE_USER_CONFIG_HASH="h1")
    r.wait_ready()
    status, body = call_json(
        r.url + "/-/reconfigure", {"user_config": {"fail": True}, "user_config_hash": "h9"}
    )
    assert status == 500 and body == {"error": "bad price config", "type": "ValueError"}
    assert (r.state() or {})["user_config_hash"] == "h1"


def test_persisted_config_survives_a_process_restart(local_replica: Start, tmp_path: Path) -> None:
    first = local_replica("Stand", SERVE_USER_CONFIG='{"price": 3}', SERVE_USER_CONFIG_HASH="h1")
    first.wait_ready()
    call_json(first.url + "/-/reconfigure", {"user_config": {"price": 7}, "user_config_hash": "h7"})
    first.stop()
    again = LocalReplica(
        tmp_path / "repo" / "app",
        tmp_path / "state-0",
        SERVE_DEPLOYMENT="Stand",
        SERVE_IMPORT_PATH="shop:graph",
        SERVE_USER_CONFIG='{"price": 3}',
        SERVE_USER_CONFIG_HASH="h1",
    )
    try:
        again.wait_ready()
        assert (again.state() or {})["user_config_hash"] == "h7"
        assert call_json(again.url + "/-/call/default/Stand/check_price", {"args": [1]})[1] == {
            "result": 7
        }
    finally:
        again.stop()


def test_http_request_and_response_encoding(local_replica: Start) -> None:
    r = local_replica("Stand")
    r.wait_ready()
    status, raw, ctype = http(r.url + "/fruit/x?a=1&b=two", b"hello", {"x-test": "yes"})
    assert status == 200 and ctype == "application/json"
    assert json.loads(raw) == {
        "price": 2,
        "method": "POST",
        "path": "/fruit/x",
        "query": {"a": "1", "b": "two"},
        "header": "yes",
        "body": "hello",
    }
    echo = local_replica("echo", "shop:echo_app")
    echo.wait_ready()
    assert http(echo.url + "/", b"\x00\x01")[:3] == (200, b"\x00\x01", "text/plain")


def test_handle_calls_and_errors_between_replicas(local_replica: Start) -> None:
    stand = local_replica("Stand", SERVE_USER_CONFIG='{"price": 3}', SERVE_USER_CONFIG_HASH="h")
    stand.wait_ready()
    # A replica answers /-/call/ for its own deployment, so it can stand in for the router here.
    market = local_replica("Market", SERVE_ROUTER_URL=stand.url)
    market.wait_ready()
    assert http(market.url + "/", b'["MANGO", 2]')[1] == b"6"
    assert http(market.url + "/", b'["TEXT", 0]')[1:] == (b"plain", "text/plain; charset=utf-8")
    assert http(market.url + "/", b'["RAW", 0]')[1:] == (b"raw", "text/plain")
    assert call_json(market.url + "/-/call/default/Market/sync_price", {"args": [4]})[1] == {
        "result": 12
    }
    status, raw, _ = http(market.url + "/", b'["BOOM", 1]')
    assert status == 500 and json.loads(raw) == {"error": "'no such fruit'", "type": "KeyError"}
    status, body = call_json(market.url + "/-/call/default/Stand/check_price", {"args": [1]})
    assert status == 404 and "not default/Stand" in body["error"]
    status, body = call_json(market.url + "/-/call/default/Market/_private", {})
    assert status == 500 and body["type"] == "AttributeError"


def test_health_reflects_check_health(local_replica: Start) -> None:
    r = local_replica("Stand", SERVE_USER_CONFIG='{"price": 3}', SERVE_USER_CONFIG_HASH="a")
    r.wait_ready()
    assert http(r.url + "/-/healthz")[0] == 200
    call_json(
        r.url + "/-/reconfigure", {"user_config": {"healthy": False}, "user_config_hash": "b"}
    )
    status, raw, _ = http(r.url + "/-/healthz")
    assert status == 503 and json.loads(raw)["error"] == "the stand is closed"


def test_constructor_failure_exits_1_with_the_user_error_last(local_replica: Start) -> None:
    r = local_replica("Broken", "shop:broken_app")
    code, _, err = r.finish()
    assert code == 1
    assert "Traceback" in err
    assert err.strip().splitlines()[-1] == "RuntimeError: the stand has no fruit"


def test_user_config_without_reconfigure_is_a_startup_error(local_replica: Start) -> None:
    r = local_replica("Plain", "shop:plain_app", SERVE_USER_CONFIG='{"a": 1}')
    code, _, err = r.finish()
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("ValueError: user_config is set but")


def test_unknown_deployment_is_a_startup_error(local_replica: Start) -> None:
    code, _, err = local_replica("Nope").finish()
    assert code == 1 and "LookupError: deployment 'Nope' is not in the application" in err


def _fire(url: str, results: list[int], count: int) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=lambda: results.append(http(url, timeout=30)[0]))
        for _ in range(count)
    ]
    for t in threads:
        t.start()
    return threads


def _peak_with(local_replica: Start, limit: str) -> int:
    r = local_replica("Slow", "shop:slow_app", SERVE_MAX_ONGOING_REQUESTS=limit)
    r.wait_ready()
    results: list[int] = []
    for t in _fire(r.url + "/?s=0.3", results, 3):
        t.join(30)
    assert results == [200, 200, 200]
    return int(json.loads(http(r.url + "/?s=0")[1])["peak"])


def test_max_ongoing_requests_serialises(local_replica: Start) -> None:
    assert _peak_with(local_replica, "1") == 1
    assert _peak_with(local_replica, "5") > 1  # the same load overlaps without the limit


def test_sigterm_drains_in_flight_request_then_calls_del(local_replica: Start) -> None:
    r = local_replica("Slow", "shop:slow_app")
    r.wait_ready()
    results: list[int] = []
    threads = _fire(r.url + "/?s=1.5", results, 1)
    wait_until(lambda: (r.state() or {}).get("ongoing") == 1, 10, "request in flight")
    sent = time.monotonic()
    r.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: http(r.url + "/-/ready")[0] == 503, 5, "not ready while draining")
    code, out, _ = r.finish()
    threads[0].join(10)
    assert results == [200]
    assert code == 0
    assert time.monotonic() - sent >= 1.0  # it waited for the request
    assert "[app] __del__ called" in out


def test_control_token_guards_every_control_endpoint_but_ready(
    local_replica: Start, tmp_path: Path
) -> None:
    """A swarm publishes the control port on every node's network: with a token file, the
    replica answers its control endpoints only to the token (handle calls too); /-/ready, the
    ingress's check, stays open, and so do the user's own paths."""
    from reconciler.runtime import control

    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    r = local_replica(
        "Stand", SERVE_CONTROL_TOKEN_FILE=str(token_file), SERVE_USER_CONFIG='{"price": 3}'
    )
    wait_until(lambda: http(r.url + "/-/ready")[0] == 200, 20, "replica ready")
    for path, body in (
        ("/-/state", None),
        ("/-/healthz", None),
        ("/-/reconfigure", b'{"user_config": {"price": 9}, "user_config_hash": "x"}'),
        ("/-/call/default/Stand/check_price", b'{"args": [2]}'),
    ):
        assert http(r.url + path, body)[0] == 401, path
        wrong = http(r.url + path, body, {"X-Serve-Token": "s3cret-tokeN"})[0]
        assert wrong == 401, path
    assert (control.state(r.url, token="s3cret-token") or {})["initialized"]
    assert control.health_error(r.url, 5, "s3cret-token") is None
    assert control.health_error(r.url, 5) is not None  # the reconciler without it: refused
    good = {"X-Serve-Token": "s3cret-token", "Content-Type": "application/json"}
    status, raw, _ = http(r.url + "/-/call/default/Stand/check_price", b'{"args": [2]}', good)
    assert (status, json.loads(raw)) == (200, {"result": 6})
    assert control.reconfigure(r.url, {"price": 5}, "h5", 10, "s3cret-token") == "h5"
