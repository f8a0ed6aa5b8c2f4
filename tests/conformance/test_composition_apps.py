"""Conformance, composition side: handles (method names, options, chained responses, sync
.result()), pickled values, exceptions across handles, streaming through handles, FastAPI with
handles, @serve.batch under concurrency, @serve.multiplexed with model affinity over two
replicas, reconfigure, and handle lookup at run time."""

from __future__ import annotations

import concurrent.futures

import pytest
import requests
from conformance_support import App, Deployed

pytestmark = pytest.mark.docker

APPS = [
    App("handles", "handles:app"),
    App("sync_handles", "sync_handles:app"),
    App("pickled_values", "pickled_values:app"),
    App("handle_streaming", "handle_streaming:app"),
    App("handle_streaming_sync", "handle_streaming:sync_app"),
    App("fastapi_handles", "fastapi_handles:app"),
    App("batching", "batching:app"),
    App("multiplexing", "multiplexing:app"),
    App("multiplexing_handle", "multiplexing:routed"),
    App(
        "reconfigure_app",
        "reconfigure_app:app",
        deployments="- name: Thresholds\n  user_config:\n    threshold: 10",
    ),
    App("handle_lookup", "deployment_handle_lookup:app"),
]
FILES = sorted({app.import_path.split(":")[0] + ".py" for app in APPS})


@pytest.fixture(scope="module")
def d(deployed_module: Deployed) -> Deployed:
    return deployed_module


def test_handle_calls_by_method_options_and_chained_responses(d: Deployed) -> None:
    assert d.get("handles", "?x=5").json() == {
        "added": 6,
        "via_options": 6,
        "called": 105,
        "chained": 18,  # (5 + 1) * 3: the response was resolved before the call
    }


def test_sync_result_and_exceptions_keep_their_type(d: Deployed) -> None:
    assert d.get("sync_handles", "?v=3").json() == {"ok": 3}
    assert d.get("sync_handles", "?v=-1").json() == {
        "error": "-1 is negative",
        "type": "ValueError",
    }


def test_picklable_values_cross_handles(d: Deployed) -> None:
    assert d.get("pickled_values").json() == {
        "point": [1.0, 1.0],
        "type": "Point",
        "label": "SQUARE",
        "sizes": [4],
    }


def test_streaming_through_handles(d: Deployed) -> None:
    with requests.get(d.url("handle_streaming", "?text=to+be+or"), stream=True, timeout=30) as r:
        assert list(r.iter_lines()) == [b"TO", b"BE", b"OR"]
    assert d.get("handle_streaming", "?text=abc&mode=collect").json() == {
        "letters": ["a", "b", "c"]
    }
    assert d.get("handle_streaming_sync", "?text=one+two").json() == {"words": ["one", "two"]}


def test_fastapi_ingress_with_handles(d: Deployed) -> None:
    assert d.get("fastapi_handles", "/translate/cat").json() == {"en": "cat", "fr": "chat"}
    assert d.get("fastapi_handles", "/sync/hello").json() == {"fr": "bonjour"}


def test_batching_under_concurrency(d: Deployed) -> None:
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda x: d.get("batching", f"?x={x}").json(), range(12)))
    assert sorted(r["input"] for r in results) == list(range(12))
    sizes = [r["batch_size"] for r in results]
    # reconfigure() set the batch size to 4 (the decorator said 8)
    assert max(sizes) > 1 and max(sizes) <= 4, sizes


def test_multiplexing_keeps_a_model_on_one_replica(d: Deployed) -> None:
    def ask(model: str) -> dict:
        return d.get("multiplexing", "?x=2", headers={"serve_multiplexed_model_id": model}).json()

    first = {m: ask(m) for m in ("m1", "m2", "m3", "m4")}
    assert first["m1"]["result"] == "m1:2" and first["m1"]["model_id"] == "m1"
    for _ in range(3):
        for model, seen in first.items():
            again = ask(model)
            assert again["replica"] == seen["replica"], (model, again, seen)
    replicas = {r["replica"] for r in first.values()}
    assert len(replicas) <= 2
    # without the header a request still answers (round robin); the model id is then ""
    r = d.get("multiplexing")
    assert r.status_code == 500 and "model id" in r.json()["error"]


def test_multiplexing_lru_per_replica(d: Deployed) -> None:
    header = "serve_multiplexed_model_id"
    base = d.get("multiplexing", headers={header: "lru-a"}).json()
    replica = base["replica"]
    # find three more model ids that land on the same replica
    same = []
    for i in range(60):
        got = d.get("multiplexing", headers={header: f"lru-{i}"}).json()
        if got["replica"] == replica and f"lru-{i}" != "lru-a":
            same.append(f"lru-{i}")
        if len(same) == 3:
            break
    assert len(same) == 3
    loads = d.get("multiplexing", headers={header: same[-1]}).json()["loads"]
    # max_num_models_per_replica=2: lru-a was evicted, asking for it loads it again
    again = d.get("multiplexing", headers={header: "lru-a"}).json()
    assert again["replica"] == replica and again["loads"] == loads + 1


def test_multiplexed_model_id_through_a_handle(d: Deployed) -> None:
    seen = {d.get("multiplexing_handle", "?model=h1&x=3").json()["replica"] for _ in range(4)}
    assert len(seen) == 1
    assert d.get("multiplexing_handle", "?model=h1&x=3").json()["result"] == "h1:3"


def test_reconfigure_gets_the_configs_user_config(d: Deployed) -> None:
    assert d.get("reconfigure_app", "?v=11").json() == {
        "threshold": 10,
        "above": True,
        "checked": True,
    }


def test_get_deployment_handle_at_request_time(d: Deployed) -> None:
    assert d.get("handle_lookup").json() == {"now": "tick"}
