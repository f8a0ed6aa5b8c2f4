"""Autoscaling through whole pass sequences, without Docker: the real loader, planner, status
and autoscaler over the behavioural engine and branch of pass_model.py, the ingress's load fed
to the autoscaler as the engine's sampler would, on the daemon's fake clock."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pass_model import Daemon, ModelBranch, ModelEngine

from reconciler import routing
from reconciler.model import ApplicationStatus, DeploymentStatus, DeploymentStatusInfo

AUTOSCALED = textwrap.dedent(
    """\
    import_path: app:app
    deployments:
      - name: Hello
        user_config:
          greeting: hi
        autoscaling_config:
          min_replicas: {low}
          max_replicas: {high}
          target_ongoing_requests: 2
          metrics_interval_s: 0.5
          look_back_period_s: 2
          upscale_delay_s: 1
          downscale_delay_s: 3
        ray_actor_options:
          num_cpus: 0.1
    """
)
BACKEND = routing.backend_name("default", "Hello")
TICK_S = 0.5


class Driven:
    """The daemon with a load: each tick the clock moves, the sampler's reading is recorded
    and a pass runs (as the daemon's trigger and requeue would run it)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.load = 0.0
        self.statuses: list[DeploymentStatus] = []
        self.app_statuses: set[ApplicationStatus] = set()

    def run(self, seconds: float) -> DeploymentStatusInfo:
        for _ in range(round(seconds / TICK_S)):
            self.daemon.clock[0] += TICK_S
            self.daemon.reconciler.autoscaler.record(self.daemon.now(), {BACKEND: self.load})
            self.daemon.reconciler.run_pass()
            app = self.daemon.snapshot.applications[0]
            self.app_statuses.add(app.status)
            if not self.statuses or self.statuses[-1] != app.deployments[0].status:
                self.statuses.append(app.deployments[0].status)
        return self.deployment

    @property
    def deployment(self) -> DeploymentStatusInfo:
        return self.daemon.snapshot.applications[0].deployments[0]

    @property
    def live(self) -> int:
        return len(self.daemon.engine.live())


@pytest.fixture
def driven(tmp_path: Path) -> Iterator[Driven]:
    daemon = Daemon(ModelBranch(tmp_path / "branch"), ModelEngine(), tmp_path / "state")
    daemon.branch.push(AUTOSCALED.format(low=0, high=4))
    daemon.settle()
    yield Driven(daemon)
    daemon.close()


def test_from_zero_up_and_back_to_zero_with_the_app_running_throughout(driven: Driven) -> None:
    assert driven.live == 0 and driven.deployment.status is DeploymentStatus.HEALTHY
    driven.load = 1.0  # one request waits at the ingress: a replica at once
    driven.run(TICK_S)
    assert driven.deployment.status is DeploymentStatus.UPSCALING and driven.live == 1
    auto = driven.deployment.autoscaling
    assert auto is not None and auto.decision.startswith("scaling up 0 -> 1")
    driven.run(2)
    assert driven.deployment.status is DeploymentStatus.HEALTHY
    driven.load = 8.0  # 4 replicas' worth
    driven.run(0.5)
    assert driven.live == 1  # upscale_delay_s not over yet
    dep = driven.run(4)  # in steps, as the look-back window fills with the new load
    assert driven.live == 4 and dep.status is DeploymentStatus.HEALTHY
    assert dep.target_replicas == 4 and dep.autoscaling is not None
    assert dep.autoscaling.decision.endswith("-> 4: 8 requests in flight, target 2 per replica")
    driven.load = 0.0
    driven.run(6)  # look-back (2 s) empties, then downscale_delay_s (3 s): 4 -> 1
    assert driven.live == 1
    driven.run(4)  # and 1 -> 0 after the delay again
    assert driven.live == 0 and driven.deployment.status is DeploymentStatus.HEALTHY
    assert DeploymentStatus.DOWNSCALING in driven.statuses
    assert DeploymentStatus.UPDATING not in driven.statuses
    assert driven.app_statuses == {ApplicationStatus.RUNNING}
    assert driven.daemon.engine.reloads == 0  # scaling never needed an ingress reload


def test_new_bounds_clamp_the_target_as_a_config_change(driven: Driven) -> None:
    driven.daemon.branch.push(AUTOSCALED.format(low=2, high=8))
    driven.run(TICK_S)
    dep = driven.deployment
    assert dep.status is DeploymentStatus.UPDATING  # config-caused: the app deploys
    assert driven.daemon.snapshot.applications[0].status is ApplicationStatus.DEPLOYING
    driven.run(2)
    assert driven.live == 2 and driven.deployment.status is DeploymentStatus.HEALTHY


def test_a_restarted_daemon_keeps_what_runs(driven: Driven) -> None:
    driven.load = 8.0
    driven.run(4)
    assert driven.live == 4
    starts = driven.daemon.engine.starts
    driven.daemon.restart()
    driven.load = 0.0  # no load after the restart: still 4 until downscale_delay_s
    driven.run(2)
    assert driven.live == 4 and driven.daemon.engine.starts == starts
    assert driven.deployment.status is DeploymentStatus.HEALTHY


def test_without_samples_the_count_holds(driven: Driven) -> None:
    driven.load = 8.0
    driven.run(4)
    for _ in range(20):  # the ingress stops answering: no record, passes go on
        driven.daemon.clock[0] += TICK_S
        driven.daemon.reconciler.run_pass()
    assert driven.live == 4
