"""Autoscaling on the real engine (issue 17): an open-loop load step scales a deployment up
within upscale_delay_s and one replica start, and back down after downscale_delay_s once the
load stops, failing no request; a deployment at zero answers the first request, which waited in
the ingress while its replica started, and goes back to zero when idle."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.model import ApplicationStatus, DeploymentStatus
from tests.e2e.conftest import Harness
from tests.load_client import RateResult, hold_rate
from tests.support import free_port, wait_for

pytestmark = pytest.mark.docker

APP = """\
import asyncio
from ray import serve


@serve.deployment
class Busy:
    async def __call__(self, request):
        await asyncio.sleep(0.1)  # 40 requests a second keep 4 in flight
        return "busy"


app = Busy.bind()
"""

CONFIG = """\
import_path: busy:app
host: 127.0.0.1
port: {port}
deployments:
  - name: Busy
    max_ongoing_requests: 5
    autoscaling_config:
      min_replicas: {low}
      max_replicas: 4
      target_ongoing_requests: 1
      metrics_interval_s: 0.5
      look_back_period_s: 2
      upscale_delay_s: 1
      downscale_delay_s: 4
      downscale_to_zero_delay_s: 2
    health_check_period_s: 1
    graceful_shutdown_wait_loop_s: 0.2
    graceful_shutdown_timeout_s: 5
    ray_actor_options:
      num_cpus: 0.05
"""


def _tree(tmp_path: Path, low: int) -> Path:
    root = tmp_path / "busy"
    root.mkdir()
    (root / "busy.py").write_text(APP)
    (root / "serve_config.yaml").write_text(CONFIG.format(port=free_port(), low=low))
    return root


def _url(root: Path) -> str:
    match = re.search(r"port: (\d+)", (root / "serve_config.yaml").read_text())
    assert match
    return f"http://127.0.0.1:{match.group(1)}/"


def _autoscaled(h: Harness) -> Harness:
    """The sampler feeding the pass's autoscaler, as the daemon wires them (passes here are
    run by the test, every 0.3 s, instead of on the autoscaler's trigger)."""
    h.engine.on_load(h.reconciler.autoscaler.record, 0.25)
    return h


def _running(h: Harness) -> int:
    return len(h.running("Busy"))


def _status(h: Harness) -> Any:
    return h.reconciler.snapshot.applications[0].deployments[0]


def test_a_load_step_scales_up_then_down_and_fails_nothing(
    tmp_path: Path, harness_for: Any
) -> None:
    root = _tree(tmp_path, low=1)
    h = _autoscaled(harness_for(root))
    h.converge()
    assert _running(h) == 1
    result: list[RateResult] = []
    load = threading.Thread(
        target=lambda: result.append(hold_rate(_url(root), rate=40, seconds=16)), daemon=True
    )
    started = time.monotonic()
    load.start()
    statuses: set[str] = set()
    decisions: list[str] = []

    def scaled_up() -> bool:
        h.reconciler.run_pass()
        statuses.add(h.reconciler.snapshot.applications[0].status)
        auto = _status(h).autoscaling
        if auto is not None and (not decisions or decisions[-1] != auto.decision):
            decisions.append(auto.decision)
        return _running(h) >= 3

    wait_for(scaled_up, timeout=25, interval=0.3, what=f"scale up ({h.describe()})")
    up_s = time.monotonic() - started
    # The first move is from the one replica, for the load (a slow start may see a second one,
    # 3 -> 4, before three run).
    ups = [d for d in decisions if d.startswith("scaling up")]
    assert ups and ups[0].startswith("scaling up 1 -> "), decisions
    load.join(40)
    stopped = time.monotonic()
    (rate,) = result
    assert rate.errors == 0, rate.summary()
    assert statuses == {ApplicationStatus.RUNNING}  # autoscaling keeps the app RUNNING

    def scaled_down() -> bool:
        h.reconciler.run_pass()
        return _running(h) == 1 and _status(h).status is DeploymentStatus.HEALTHY

    wait_for(scaled_down, timeout=40, interval=0.3, what=f"scale down ({h.describe()})")
    down_s = time.monotonic() - stopped
    # up: look-back fills (2 s), upscale_delay_s (1 s), one start; down: not before the look-back
    # window empties and downscale_delay_s (4 s) is over, then the drain
    assert up_s < 20, up_s
    assert 4 <= down_s < 30, down_s
    assert "scaling down" in (_status(h).autoscaling.decision or "")


def test_from_zero_the_first_request_waits_and_is_answered(
    tmp_path: Path, harness_for: Any
) -> None:
    root = _tree(tmp_path, low=0)
    h = _autoscaled(harness_for(root))
    h.converge()
    assert _running(h) == 0 and _status(h).status is DeploymentStatus.HEALTHY
    answers: list[requests.Response] = []
    first = threading.Thread(
        target=lambda: answers.append(requests.get(_url(root), timeout=60)), daemon=True
    )
    first.start()

    def answered() -> bool:
        h.reconciler.run_pass()
        return bool(answers)

    wait_for(answered, timeout=60, interval=0.3, what=f"the first answer ({h.describe()})")
    assert answers[0].status_code == 200 and answers[0].text == "busy"
    assert _running(h) == 1

    def back_to_zero() -> bool:
        h.reconciler.run_pass()
        return not h.replicas("Busy")

    wait_for(back_to_zero, timeout=40, interval=0.3, what=f"back to zero ({h.describe()})")
    assert "-> 0" in _status(h).autoscaling.decision
