"""Serve's autoscaling decision (Ray 2.40-2.60's default policy), as a pure function of the
load samples, the deployment's `AutoscalingConfig`, its running replicas and the clock. No I/O.

Serve's rule, step by step (`step`):
1. The load is the requests in flight for the deployment (queued at the proxy + running on its
   replicas), sampled every `metrics_interval_s` and aggregated over the last
   `look_back_period_s` by `aggregation_function` (mean, max or min; Ray 2.60).
2. From zero running replicas, any request waiting scales up at once, to
   max(ceil(upscale_factor), the current target): the delays do not apply (cold start).
3. Otherwise, with `running` replicas and `total` in flight:
   desired = ceil(running + factor * (total / target_ongoing_requests - running)),
   the factor being the upscale or downscale one (upscaling_factor, else
   upscale_smoothing_factor, else smoothing_factor). When the load itself asks for fewer
   replicas (ceil(total / target) < running) but the factor keeps `desired` at `running`, one
   replica less (Ray 2.40+: PR #42394 as fixed after #46148, so a small downscaling_factor slows
   downscaling down and a load that asks for no change changes nothing), then clamped to
   [min_replicas, max_replicas].
4. The target moves only once the same direction has been wanted for `upscale_delay_s` /
   `downscale_delay_s` of wall time (Ray 2.60 measures time, not ticks); a change of direction
   or a sample asking for the current target starts the wait again. A downscale stops at 1, and
   1 -> 0 waits `downscale_to_zero_delay_s` when given (Ray 2.50+).

The delay is what keeps an oscillating load from flapping the replica count (ray #26455,
#18925, #63279): a downscale must be wanted for the whole downscale_delay_s (600 s by default),
longer than the look-back window and than most load cycles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from reconciler.model import AutoscalingConfig, ServeConfig

UP, DOWN, HOLD = 1, -1, 0
_EPSILON_S = 1e-6  # float sums of timestamps fall a hair short of a delay


@dataclass(frozen=True)
class Sample:
    at: float  # wall time, seconds
    in_flight: float  # requests queued at the ingress + running on the deployment's replicas


@dataclass(frozen=True)
class Decision:
    """A move of the target, and why, in words."""

    at: float
    previous: int
    target: int
    in_flight: float
    reason: str


@dataclass(frozen=True)
class ScaleState:
    """What the autoscaler carries from one step to the next, for one deployment."""

    target: int
    wanting: int = HOLD  # the direction wanted since `since` (Serve's decision counter's sign)
    since: float | None = None
    desired: int | None = None  # what the last step computed
    in_flight: float | None = None  # the load the last step saw (None: no samples)
    last: Decision | None = None  # the last move of the target
    by_load: bool = False  # the target was last set by the load (not the config's bounds)


def aggregate(samples: Sequence[Sample], since: float, how: str) -> float | None:
    """The samples from `since` on, reduced by `how` (mean, max, min); None without any."""
    values = [s.in_flight for s in samples if s.at >= since - _EPSILON_S]
    if not values:
        return None
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    return sum(values) / len(values)


def desired_replicas(config: AutoscalingConfig, total: float, running: int) -> int:
    """Steps 2-3 of the module doc, before the delay: what the load asks for now."""
    if running == 0:
        return math.ceil(config.upscale_factor) if total > 0 else 0
    raw = total / config.target_ongoing_requests  # = running * error ratio
    factor = config.upscale_factor if raw > running else config.downscale_factor
    scaled = math.ceil(running + factor * (raw - running) - 1e-9)
    if math.ceil(raw - 1e-9) < running and scaled == running:
        scaled -= 1  # the factor alone would never let it come down
    return config.bound(max(0, scaled))


def step(
    config: AutoscalingConfig,
    state: ScaleState,
    samples: Sequence[Sample],
    running: int,
    now: float,
) -> ScaleState:
    """One evaluation: the new state (its `target` is the deployment's replica count)."""
    total = aggregate(samples, now - config.look_back_period_s, config.aggregation_function)
    if total is None:
        return replace(state, in_flight=None)  # no data: hold
    if running == 0 and total > 0:
        target = config.bound(max(math.ceil(config.upscale_factor), state.target))
        return _move(state, target, total, now, config, cold=True)
    if running == 0:
        return replace(_hold(state), in_flight=total, desired=state.target)
    desired = desired_replicas(config, total, running)
    state = replace(state, in_flight=total, desired=desired)
    if desired > state.target:
        return _wait(state, UP, desired, config.upscale_delay_s, total, now, config)
    if desired < state.target:
        if state.target > 1:
            desired = max(1, desired)  # 1 -> 0 is a step of its own
        delay = config.downscale_delay_s
        if state.target == 1 and config.downscale_to_zero_delay_s is not None:
            delay = config.downscale_to_zero_delay_s
        return _wait(state, DOWN, desired, delay, total, now, config)
    return _hold(state)


def _hold(state: ScaleState) -> ScaleState:
    return replace(state, wanting=HOLD, since=None)


def _wait(
    state: ScaleState,
    direction: int,
    desired: int,
    delay_s: float,
    total: float,
    now: float,
    config: AutoscalingConfig,
) -> ScaleState:
    since = state.since if state.wanting == direction and state.since is not None else now
    if now - since + _EPSILON_S >= delay_s:
        return _move(state, desired, total, now, config)
    return replace(state, wanting=direction, since=since)


def _move(
    state: ScaleState,
    target: int,
    total: float,
    now: float,
    config: AutoscalingConfig,
    cold: bool = False,
) -> ScaleState:
    if target == state.target:
        return _hold(replace(state, in_flight=total))
    decision = Decision(
        now, state.target, target, total, reason(state.target, target, total, config, cold)
    )
    return ScaleState(target=target, desired=target, in_flight=total, last=decision, by_load=True)


def reason(previous: int, target: int, total: float, config: AutoscalingConfig, cold: bool) -> str:
    """ "scaling up 2 -> 5: 9.6 requests in flight, target 2 per replica"."""
    verb = "scaling up" if target > previous else "scaling down"
    load = f"{total:.3g} request{'' if total == 1 else 's'} in flight"
    why = (
        "waiting with no replica running"
        if cold
        else f"target {config.target_ongoing_requests:g} per replica"
    )
    return f"{verb} {previous} -> {target}: {load}, {why}"


def seed(config: AutoscalingConfig, live: int) -> ScaleState:
    """The first state of a deployment this process has not seen: initial_replicas (else
    min_replicas) for a new one, what runs (within the bounds) for one that already runs (a
    restarted reconciler, or a deployment that starts autoscaling)."""
    target = config.bound(live) if live > 0 else config.start_replicas
    return ScaleState(target=target)


def rebound(config: AutoscalingConfig, state: ScaleState) -> ScaleState:
    """The state under new bounds (a config change): the target clamped to them."""
    target = config.bound(state.target)
    if target == state.target:
        return state
    return replace(state, target=target, wanting=HOLD, since=None, by_load=False)


def with_targets(config: ServeConfig, targets: dict[tuple[str, str], int]) -> ServeConfig:
    """`config` with the replica counts of the deployments in `targets` set to them (the
    autoscaler's decisions); `version` does not move, so nothing restarts for it."""
    if not targets:
        return config
    apps = tuple(
        replace(
            app,
            deployments=tuple(
                replace(d, num_replicas=targets[d.key]) if d.key in targets else d
                for d in app.deployments
            ),
        )
        for app in config.applications
    )
    return replace(config, applications=apps)
