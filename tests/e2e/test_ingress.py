"""Traffic through the HAProxy ingress (issue 6): routing, composition, 404/503, and updates that
drop nothing under a steady load."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import ENGINES, ENGINES_SLOW_ON_SWARM
from tests.e2e.load import SteadyLoad
from tests.support import wait_for

pytestmark = pytest.mark.docker


def _port(root: Path, config: str = "serve_config.yaml") -> int:
    match = re.search(r"port: (\d+)", (root / config).read_text())
    assert match
    return int(match.group(1))


def _ask(h: Any, port: int, body: Any, path: str = "/") -> requests.Response:
    return requests.post(h.url(port, path), json=body, timeout=10)


@pytest.mark.parametrize("harness_for", ENGINES, indirect=True)
def test_fruit_answers_through_the_ingress_and_price_change_restarts_nothing(
    fruit_tree: Path, harness_for: Any
) -> None:
    h = harness_for(fruit_tree)
    h.converge()
    port = _port(fruit_tree)
    assert _ask(h, port, ["MANGO", 2]).json() == 6
    assert _ask(h, port, ["PEAR", 2]).json() == 8
    assert _ask(h, port, ["ORANGE", 1]).json() == 2
    assert _ask(h, port, ["TOMATO", 2]).json() == -1
    nodes = h.reconciler.snapshot.nodes  # a swarm's: its replicas are on more than one node
    assert not nodes or sum(1 for n in nodes if n.replicas) > 1, nodes
    before = {r.container_id for r in h.replicas()}
    h.edit("serve_config.yaml", "price: 3", "price: 5")
    h.converge()
    assert _ask(h, port, ["MANGO", 2]).json() == 10
    assert {r.container_id for r in h.replicas()} == before


@pytest.mark.parametrize("harness_for", ENGINES_SLOW_ON_SWARM, indirect=True)
def test_multi_app_routes_by_prefix_and_404s_elsewhere(fruit_tree: Path, harness_for: Any) -> None:
    h = harness_for(fruit_tree, "multi_app_config.yaml")
    h.converge()
    port = _port(fruit_tree, "multi_app_config.yaml")
    assert _ask(h, port, ["PEAR", 2], "/fruit").json() == 8
    assert _ask(h, port, ["PEAR", 2], "/fruit/anything").json() == 8
    missing = _ask(h, port, ["PEAR", 2], "/vegetables")
    assert missing.status_code == 404
    assert "no application" in missing.text


@pytest.mark.parametrize("harness_for", ENGINES_SLOW_ON_SWARM, indirect=True)
def test_no_healthy_replica_is_a_clear_503(greeter_tree: Path, harness_for: Any) -> None:
    h = harness_for(greeter_tree)
    h.converge()
    port = _port(greeter_tree)
    assert _ask(h, port, {}).status_code == 200
    h.edit("greeter.py", '        self.greeting = "?"', '        raise RuntimeError("broken")')
    h.edit("greeter.py", 'VERSION = "v1"', 'VERSION = "v2"')
    # The old version keeps serving while the new one fails; take the old ones away by hand.
    for r in h.running("Greeter"):
        h.engine.drain(r, 1)

    def unavailable() -> bool:
        h.reconciler.run_pass()
        return _ask(h, port, {}).status_code == 503

    wait_for(unavailable, timeout=60, what="503 from the ingress")
    body = _ask(h, port, {}).text
    assert "no healthy replica" in body and "Greeter" in body


@pytest.mark.parametrize("harness_for", ENGINES_SLOW_ON_SWARM, indirect=True)
def test_updates_drop_no_request_under_steady_load(greeter_tree: Path, harness_for: Any) -> None:
    h = harness_for(greeter_tree)
    h.edit("serve_config.yaml", "num_replicas: 2", "num_replicas: 2\n    max_ongoing_requests: 8")
    h.converge()
    port = _port(greeter_tree)
    stop = threading.Event()
    with SteadyLoad(h.url(port), {}, rate=25) as load:
        wait_for(lambda: load.sent >= 25, timeout=10, what="load to start")
        steps = [
            ("num_replicas: 2", "num_replicas: 4", "serve_config.yaml"),
            ("num_replicas: 4", "num_replicas: 2", "serve_config.yaml"),
            ("greeting: hello", "greeting: hey", "serve_config.yaml"),
            ('VERSION = "v1"', 'VERSION = "v2"', "greeter.py"),
        ]
        for old, new, path in steps:
            h.edit(path, old, new)
            h.converge()
        sent_before = load.sent
        wait_for(lambda: load.sent >= sent_before + 25, timeout=10, what="load after updates")
        stop.set()
    assert load.failures == [], load.failures[:10]
    assert load.sent >= 100
    last = [a for a in load.answers if '"v2"' in a and '"hey"' in a]
    assert last, load.answers
