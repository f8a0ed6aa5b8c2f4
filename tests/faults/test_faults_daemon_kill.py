"""The daemon killed with SIGKILL at random points of a rollout (issue 9, "Faults").

Each trial pushes a commit that rolls the replicas (a code change, sometimes a scale change),
waits a random delay, kills the daemon with SIGKILL and starts it again on the same state
directory. After each restart the instance must converge to exactly the target: no duplicate, no
orphan, no container left half-made, and no replica restarted that was already at the target
version and RUNNING before the kill. The delays come from a seeded generator; the seed is printed
and can be fixed with RECONCILER_FAULT_SEED to replay a failure.
"""

from __future__ import annotations

import os
import random
import threading

import pytest

from reconciler.model import ReplicaState
from tests.faults.faults_support import Rig, converge, greet_all, target_versions
from tests.support import git

pytestmark = pytest.mark.docker

MAX_DELAY_S = 4.0  # a rollout of 2-3 replicas takes about this long: kills land all over it


def _seed() -> int:
    given = os.environ.get("RECONCILER_FAULT_SEED")
    return int(given) if given else random.SystemRandom().randrange(1 << 32)


def _kill_trials(rig: Rig, trials: int) -> None:
    seed = _seed()
    print(f"RECONCILER_FAULT_SEED={seed}")
    rng = random.Random(seed)
    daemon = rig.start()
    replicas = 2
    converge(rig, daemon, git(rig.remote.work, "rev-parse", "HEAD"), replicas)
    for trial in range(1, trials + 1):
        scale = rng.choice((2, 3)) if rng.random() < 0.4 else replicas
        rig.remote.edit("greeter.py", f'VERSION = "v{trial - 1}"', f'VERSION = "v{trial}"')
        rig.remote.edit("serve_config.yaml", f"num_replicas: {replicas}", f"num_replicas: {scale}")
        commit = rig.remote.commit_all(f"v{trial}, {scale} replicas")
        replicas = scale
        delay = rng.uniform(0.0, MAX_DELAY_S)
        where = f"seed {seed}, trial {trial}, kill after {delay:.2f}s"
        threading.Event().wait(delay)  # the fault's timing is the point of the test
        version = target_versions(rig.remote, rig.tmp)["Greeter"]
        done = {
            r.container_id
            for r in rig.replicas()
            if r.version == version and r.state == ReplicaState.RUNNING
        }
        daemon.kill()
        daemon = rig.start()
        converge(rig, daemon, commit, replicas)
        kept = rig.running_ids()
        assert done <= kept, f"{where}: restarted needlessly: {sorted(done - kept)}"
        assert rig.problems({"Greeter": version}, replicas) == [], where
        print(f"{where}: {len(done)} target replicas before the kill, all kept")
    assert greet_all(rig) == {f"hello, al (v{trials})"}


def test_kill_9_at_random_points_of_rollouts(rig: Rig) -> None:
    _kill_trials(rig, trials=10)


@pytest.mark.slow
def test_kill_9_at_random_points_of_rollouts_long(rig: Rig) -> None:
    _kill_trials(rig, trials=30)
