"""Helpers for the replica-fault, hostile-input, security and load tests: an application with
one healthy deployment (Greeter) and one that misbehaves on purpose (Faulty), and a pass loop
that records what the reconciler created while it drove the passes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.model import DeploymentStatusInfo, ObservedReplica, ReplicaState
from tests.e2e.conftest import Harness
from tests.support import free_port

FAULTY_APP = """\
import os
import signal
import sys
import threading
from ray import serve

MODE = {mode!r}
CRASH_TEXT = "fatal: lost the connection to the fruit database"


@serve.deployment
class Faulty:
    def __init__(self):
        self.checks = 0
        if MODE == "crash":
            threading.Thread(target=self._crash, daemon=True).start()
        elif MODE == "hang_init":
            threading.Event().wait()
        elif MODE == "ignore_term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _crash(self):
        threading.Event().wait(1.0)
        print(CRASH_TEXT, file=sys.stderr, flush=True)
        os._exit(3)

    def check_health(self):
        self.checks += 1
        if MODE == "hang_health" and self.checks > 1:  # healthy at start, hangs afterwards
            threading.Event().wait()

    def __call__(self, request):
        return "faulty"


@serve.deployment
class Greeter:
    def __init__(self, faulty):
        self.faulty = faulty
        self.greeting = "?"

    def reconfigure(self, config):
        self.greeting = config["greeting"]

    def greet(self, name):
        return f"{{self.greeting}}, {{name}}"

    def env(self, name):
        return os.environ.get(name)

    def __call__(self, request):
        return self.greeting


app = Greeter.bind(Faulty.bind())
"""

FAULTY_CONFIG = """\
import_path: faulty:app
host: 127.0.0.1
port: {port}
deployments:
  - name: Greeter
    num_replicas: 1
    user_config:
      greeting: hello
    health_check_period_s: 1
    health_check_timeout_s: 2
    graceful_shutdown_wait_loop_s: 0.1
    graceful_shutdown_timeout_s: 2
    ray_actor_options:
      num_cpus: 0.05
  - name: Faulty
    num_replicas: {faulty_replicas}
    health_check_period_s: 1
    health_check_timeout_s: 1
    graceful_shutdown_wait_loop_s: 0.1
    graceful_shutdown_timeout_s: {grace}
    ray_actor_options:
      num_cpus: 0.05
"""


def fault_tree(tmp: Path, mode: str, *, faulty_replicas: int = 1, grace: float = 2) -> Path:
    root = tmp / f"faulty-{mode}"
    root.mkdir()
    (root / "faulty.py").write_text(FAULTY_APP.format(mode=mode))
    config = FAULTY_CONFIG.format(port=free_port(), faulty_replicas=faulty_replicas, grace=grace)
    (root / "serve_config.yaml").write_text(config)
    return root


def deployment(h: Harness, name: str) -> DeploymentStatusInfo | None:
    for app in h.reconciler.snapshot.applications:
        for d in app.deployments:
            if d.name == name:
                return d
    return None


@dataclass
class PassLog:
    """What a run of passes saw: when each container first appeared, how long each pass took,
    and every status message of one deployment."""

    first_seen: dict[str, float] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def created_after(self, t0: float) -> list[float]:
        return sorted(t - self.started for t in self.first_seen.values() if t >= t0)


def drive(
    h: Harness,
    log: PassLog,
    *,
    seconds: float,
    watch: str = "Faulty",
    until: object = None,
    interval: float = 0.3,
) -> None:
    """Run passes every `interval` for `seconds` (or until `until()` is true), recording."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while time.monotonic() < deadline:
        began = time.monotonic()
        h.reconciler.run_pass()
        log.durations.append(time.monotonic() - began)
        for r in h.replicas(watch):
            log.first_seen.setdefault(r.container_id, time.monotonic())
        info = deployment(h, watch)
        if info is not None and info.message:
            log.messages.append(info.message)
        if callable(until) and until():
            return
        pause.wait(interval)


def running(h: Harness, name: str) -> list[ObservedReplica]:
    return [r for r in h.replicas(name) if r.state is ReplicaState.RUNNING]


def greeting_everywhere(h: Harness, expected: str) -> bool:
    """Every Greeter replica answers with `expected` (and there is one)."""
    replicas = running(h, "Greeter")
    return bool(replicas) and all(h.call(r, "greet", "al") == f"{expected}, al" for r in replicas)
