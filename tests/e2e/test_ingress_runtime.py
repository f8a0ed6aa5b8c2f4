"""The ingress follows replica changes through HAProxy's runtime API (issue 16): scaling, a
user_config change and a rolling update under steady load from kept-alive clients and from
clients opening a connection per request, with no failed request and no HAProxy reload; a drained
replica is told to stop only once the ingress has nothing left on it."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.model import ReplicaState
from tests.e2e.conftest import Harness
from tests.e2e.load import SteadyLoad
from tests.support import wait_for

pytestmark = pytest.mark.docker

SLOW_HANDLER = """\
import time
from ray import serve


@serve.deployment
class Slow:
    def __call__(self, request):
        seconds = float(request.query_params.get("s", "0"))
        time.sleep(seconds)
        return {"slept": seconds}


app = Slow.bind()
"""

SLOW_CONFIG = """\
import_path: slow:app
host: 127.0.0.1
port: {port}
deployments:
  - name: Slow
    num_replicas: 2
    max_ongoing_requests: 4
    health_check_period_s: 1
    graceful_shutdown_wait_loop_s: 0.2
    graceful_shutdown_timeout_s: 20
    ray_actor_options:
      num_cpus: 0.05
"""


def _port(root: Path) -> int:
    match = re.search(r"port: (\d+)", (root / "serve_config.yaml").read_text())
    assert match
    return int(match.group(1))


def _reload_lines(h: Harness) -> int:
    """Reloads the ingress's HAProxy has logged (its master prints one line per reload)."""
    api = h.engine._api()
    return str(api.logs(h.engine.ingress_name).decode()).count("Reloading HAProxy")


def _run_steps(h: Harness, url: str, steps: list[tuple[str, str, str]]) -> list[SteadyLoad]:
    fresh = SteadyLoad(url, {}, rate=20)
    kept = SteadyLoad(url, {}, rate=20, keep_alive=True)
    with fresh, kept:
        wait_for(lambda: fresh.sent >= 20 and kept.sent >= 20, timeout=15, what="load to start")
        for old, new, path in steps:
            h.edit(path, old, new)
            h.converge(timeout=120)
        sent = fresh.sent + kept.sent
        wait_for(lambda: fresh.sent + kept.sent >= sent + 20, timeout=15, what="load after")
    return [fresh, kept]


def _check(loads: list[SteadyLoad]) -> None:
    for load in loads:
        assert load.failures == [], load.failures[:10]
        assert load.sent >= 40


def test_scale_reconfigure_and_roll_without_a_reload_or_a_failed_request(
    greeter_tree: Path, harness_for: Any
) -> None:
    h = harness_for(greeter_tree)
    h.edit("serve_config.yaml", "num_cpus: 0.2", "num_cpus: 0.05")
    h.converge()
    url = f"http://127.0.0.1:{_port(greeter_tree)}/"
    assert h.engine.ingress_admin is not None, "the ingress publishes its runtime API"
    # The application is at "/", yet the replicas' control endpoints are not the public's.
    for path, body in (("-/reconfigure", b"{}"), ("-/call/default/Greeter/__call__", b"{}")):
        answer = requests.post(url + path, data=body, timeout=10)
        assert answer.status_code == 404 and "no application" in answer.text, answer.text
    reloads, logged = h.engine.ingress_reloads, _reload_lines(h)
    steps = [
        ("num_replicas: 2", "num_replicas: 8", "serve_config.yaml"),
        ("num_replicas: 8", "num_replicas: 1", "serve_config.yaml"),
        ("greeting: hello", "greeting: hey", "serve_config.yaml"),
        ("num_replicas: 1", "num_replicas: 3", "serve_config.yaml"),
        ('VERSION = "v1"', 'VERSION = "v2"', "greeter.py"),
    ]
    loads = _run_steps(h, url, steps)
    _check(loads)
    assert h.engine.ingress_reloads == reloads and _reload_lines(h) == logged
    assert h.engine.ingress_runtime_changes >= 4
    served = [a for load in loads for a in load.answers if '"v2"' in a and '"hey"' in a]
    assert served, loads[0].answers
    assert len(h.running("Greeter")) == 3


@pytest.mark.slow
def test_rolling_update_of_30_replicas_under_load_fails_nothing(
    greeter_tree: Path, harness_for: Any
) -> None:
    h = harness_for(greeter_tree)
    h.edit("serve_config.yaml", "num_cpus: 0.2", "num_cpus: 0.05")
    h.converge()
    url = f"http://127.0.0.1:{_port(greeter_tree)}/"
    reloads = h.engine.ingress_reloads
    steps = [
        ("num_replicas: 2", "num_replicas: 8", "serve_config.yaml"),
        ("num_replicas: 8", "num_replicas: 1", "serve_config.yaml"),
        ("num_replicas: 1", "num_replicas: 30", "serve_config.yaml"),
        ("greeting: hello", "greeting: hey", "serve_config.yaml"),
        ('VERSION = "v1"', 'VERSION = "v2"', "greeter.py"),
    ]
    _check(_run_steps(h, url, steps))
    assert h.engine.ingress_reloads == reloads
    assert len(h.running("Greeter")) == 30


def test_a_drained_replica_finishes_its_requests_before_it_is_told_to_stop(
    tmp_path: Path, harness_for: Any
) -> None:
    from tests.support import free_port

    root = tmp_path / "slow"
    root.mkdir()
    (root / "slow.py").write_text(SLOW_HANDLER)
    (root / "serve_config.yaml").write_text(SLOW_CONFIG.format(port=free_port()))
    h = harness_for(root)
    h.converge()
    url = f"http://127.0.0.1:{_port(root)}/?s=3"
    answers: list[int] = []

    def slow_request() -> None:
        answers.append(requests.get(url, timeout=30).status_code)

    threads = [threading.Thread(target=slow_request) for _ in range(4)]
    for t in threads:
        t.start()
    # the four requests are running on the two replicas (leastconn: two each)
    admin = h.engine.ingress_admin
    assert admin is not None
    wait_for(
        lambda: (
            sum(r.scur for r in admin.show_stat() if r.is_backend and r.proxy.startswith("be_"))
            >= 4
        ),
        timeout=10,
        what="four requests in flight",
    )
    h.edit("serve_config.yaml", "num_replicas: 2", "num_replicas: 1")
    h.reconciler.run_pass()  # drains one replica: out of rotation, renamed, still running
    stopping = [r for r in h.replicas() if r.state is ReplicaState.STOPPING]
    assert len(stopping) == 1 and stopping[0].in_flight == 2 and not stopping[0].stop_sent
    h.reconciler.run_pass()  # still busy: not told to stop
    (still,) = [r for r in h.replicas() if r.state is ReplicaState.STOPPING]
    assert still.in_flight == 2 and not still.stop_sent
    h.converge(timeout=60)  # the requests end, then it is told to stop, exits, is removed
    for t in threads:
        t.join(30)
    assert answers == [200] * 4
