"""The autoscaler: soft state of the pass driver, one entry per autoscaled deployment (its load
samples and Serve's decision state, `autoscale.ScaleState`).

Two threads use it. The engine's load sampler calls `record` on a short tick, independent of the
git poll, with the requests in flight per ingress backend (HAProxy's backend `scur`: running on
the replicas + queued + waiting at zero); each deployment keeps one sample per
`metrics_interval_s` (at once when it is at zero and a request waits) and is evaluated on every
tick. A moved target calls `on_change` (the daemon asks for a pass at once). The pass calls
`targets` with the config and what it observed: it registers the config's autoscaled
deployments (a new one starts at initial_replicas, else min_replicas; one that already runs, as
after a restart, at what runs, within the bounds; new bounds clamp the target), notes how many
replicas run (the decision's `running`) and returns the targets the planner and the status use.
Losing this state (a restart) costs the samples and the delays' progress, nothing else.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler import autoscale, routing
from reconciler.autoscale import Sample, ScaleState
from reconciler.model import (
    AutoscalingConfig,
    AutoscalingStatus,
    ObservedReplica,
    ReplicaState,
    ServeConfig,
)

Key = tuple[str, str]
_LIVE = (ReplicaState.STARTING, ReplicaState.RUNNING)


@dataclass
class _Deployment:
    config: AutoscalingConfig
    backend: str
    state: ScaleState
    running: int = 0
    samples: deque[Sample] = field(default_factory=deque)


class Autoscaler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deployments: dict[Key, _Deployment] = {}
        self._on_change: Callable[[], None] = lambda: None

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (from the sampler's thread) when a target moves."""
        self._on_change = callback

    # --- the pass ----------------------------------------------------------------------------

    def targets(self, config: ServeConfig, observed: Sequence[ObservedReplica]) -> dict[Key, int]:
        """Register the config's autoscaled deployments, note what runs, return the targets."""
        running: dict[Key, int] = {}
        live: dict[Key, int] = {}
        for r in observed:
            if r.state in _LIVE:
                live[r.key] = live.get(r.key, 0) + 1
            if r.state is ReplicaState.RUNNING:
                running[r.key] = running.get(r.key, 0) + 1
        with self._lock:
            wanted: dict[Key, _Deployment] = {}
            for spec in config.deployments():
                auto = spec.autoscaling_config
                if auto is None:
                    continue
                known = self._deployments.get(spec.key)
                if known is None:
                    known = _Deployment(
                        auto,
                        routing.backend_name(*spec.key),
                        autoscale.seed(auto, live.get(spec.key, 0)),
                    )
                elif known.config != auto:
                    known.config, known.state = auto, autoscale.rebound(auto, known.state)
                known.running = running.get(spec.key, 0)
                wanted[spec.key] = known
            self._deployments = wanted
            return {key: d.state.target for key, d in wanted.items()}

    def status(self) -> dict[Key, AutoscalingStatus]:
        with self._lock:
            return {key: _status(d) for key, d in self._deployments.items()}

    # --- the sampler ---------------------------------------------------------------------------

    def record(self, now: float, loads: Mapping[str, float]) -> None:
        """One tick of the sampler: `loads` are the requests in flight per ingress backend."""
        moved = False
        with self._lock:
            for d in self._deployments.values():
                value = loads.get(d.backend)
                if value is None:
                    continue  # the ingress does not have the backend (yet): no data
                _keep(d, now, value)
                before = d.state.target
                d.state = autoscale.step(d.config, d.state, tuple(d.samples), d.running, now)
                moved = moved or d.state.target != before
        if moved:
            self._on_change()


def _keep(d: _Deployment, now: float, value: float) -> None:
    """One sample per metrics_interval_s; at once when a request waits at zero (a cold start
    must not wait for the next sample), and old ones dropped past the look-back window."""
    c = d.config
    last = d.samples[-1].at if d.samples else None
    cold = d.running == 0 and d.state.target == 0 and value > 0
    if last is None or now - last >= c.metrics_interval_s - 1e-6 or cold:
        d.samples.append(Sample(now, value))
    horizon = now - c.look_back_period_s - c.metrics_interval_s
    while d.samples and d.samples[0].at < horizon:
        d.samples.popleft()


def _status(d: _Deployment) -> AutoscalingStatus:
    last = d.state.last
    return AutoscalingStatus(
        min_replicas=d.config.min_replicas,
        max_replicas=d.config.max_replicas,
        target_replicas=d.state.target,
        in_flight=d.state.in_flight,
        target_ongoing_requests=d.config.target_ongoing_requests,
        decision=last.reason if last else "",
        decided_at=last.at if last else 0.0,
        by_load=d.state.by_load,
        upscale=last is None or last.target > last.previous,
    )
