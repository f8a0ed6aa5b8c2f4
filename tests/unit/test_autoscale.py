"""Serve's autoscaling decision (reconciler/autoscale.py) on Serve's own cases, on a fake clock:
steady load, a step up, a step down, an oscillating load (the complaints of ray #26455, #18925,
#63279: no flapping), the downscaling_factor of ray #46148, scaling from and to zero."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from reconciler.autoscale import (
    Sample,
    ScaleState,
    aggregate,
    desired_replicas,
    rebound,
    seed,
    step,
)
from reconciler.model import AutoscalingConfig


def auto(**kw: object) -> AutoscalingConfig:
    fields: dict[str, object] = {"min_replicas": 1, "max_replicas": 10}
    fields.update(kw)
    return AutoscalingConfig(**fields)  # type: ignore[arg-type]


@dataclass
class Sim:
    """A deployment under a load: every `metrics_interval_s` a sample, then a step; replicas
    start `start_s` after the target rises and stop at once when it falls."""

    config: AutoscalingConfig
    load: Callable[[float], float]
    target: int = 1
    start_s: float = 0.0
    now: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    history: list[tuple[float, int]] = field(default_factory=list)  # (time, new target)
    _ready_at: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = ScaleState(target=self.target)

    def running(self) -> int:
        return sum(1 for i in range(self.state.target) if self._ready_at.get(i, 0.0) <= self.now)

    def run(self, seconds: float) -> ScaleState:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + self.config.metrics_interval_s, 6)
            self.samples.append(Sample(self.now, self.load(self.now)))
            before = self.state.target
            self.state = step(self.config, self.state, self.samples, self.running(), self.now)
            if self.state.target != before:
                self.history.append((self.now, self.state.target))
                for i in range(before, self.state.target):
                    self._ready_at[i] = self.now + self.start_s
        return self.state

    def moves(self) -> list[int]:
        return [target for _, target in self.history]


# --- the formula -----------------------------------------------------------------------------


def test_desired_is_the_load_over_the_target_per_replica() -> None:
    c = auto(target_ongoing_requests=2)
    assert desired_replicas(c, 4.0, 2) == 2  # steady
    assert desired_replicas(c, 9.6, 2) == 5  # 9.6 / 2 = 4.8 -> 5
    assert desired_replicas(c, 2.0, 5) == 1
    assert desired_replicas(c, 100.0, 2) == 10  # clamped to max_replicas
    assert desired_replicas(auto(min_replicas=3), 0.0, 5) == 3


def test_factors_moderate_each_direction_with_serves_precedence() -> None:
    c = auto(target_ongoing_requests=1, upscaling_factor=0.5, smoothing_factor=2)
    assert desired_replicas(c, 6.0, 2) == 4  # 2 + 0.5 * (6 - 2)
    assert desired_replicas(c, 0.0, 4) == 1  # downscaling: smoothing_factor 2 -> 4 - 8, min 1
    old = auto(target_ongoing_requests=1, upscale_smoothing_factor=3)  # Ray 2.9's name
    assert desired_replicas(old, 3.0, 2) == 5  # 2 + 3 * (3 - 2)


def test_downscaling_factor_is_honoured_as_serve_documents_it_ray_46148() -> None:
    c = auto(target_ongoing_requests=2, downscaling_factor=0.5)
    # The load asks for 4.8 replicas: no change (the 2.10 rule dropped one here, bypassing it).
    assert desired_replicas(c, 9.6, 5) == 5
    assert desired_replicas(c, 8.2, 5) == 5
    # It asks for 3: the factor halves the step (5 -> 4), it does not force one replica.
    assert desired_replicas(c, 6.0, 5) == 4
    # A small factor that would never let it come down still comes down, one at a time.
    slow = auto(target_ongoing_requests=2, downscaling_factor=0.1)
    assert desired_replicas(slow, 0.0, 3) == 2
    assert desired_replicas(slow, 0.0, 2) == 1


def test_aggregation_over_the_look_back_window() -> None:
    samples = [Sample(t, v) for t, v in ((0, 100), (10, 2), (20, 4), (30, 6))]
    assert aggregate(samples, 5, "mean") == 4
    assert aggregate(samples, 5, "max") == 6
    assert aggregate(samples, 5, "min") == 2
    assert aggregate(samples, 31, "mean") is None


# --- over time ----------------------------------------------------------------------------------


def test_steady_load_never_moves() -> None:
    sim = Sim(auto(target_ongoing_requests=2), lambda t: 4.0, target=2)
    sim.run(3600)
    assert sim.history == []


def test_a_step_up_applies_after_upscale_delay() -> None:
    c = auto(target_ongoing_requests=2)  # Serve's defaults: 10 s samples, 30 s look-back/delay
    sim = Sim(c, lambda t: 10.0 if t > 100 else 2.0, target=1)
    sim.run(100)
    assert sim.history == []
    sim.run(60)
    (at, target), *_ = sim.history
    assert target == 5 and 130 <= at <= 140  # wanted from the first sample past the step
    assert sim.state.last is not None
    assert sim.state.last.reason == "scaling up 1 -> 5: 10 requests in flight, target 2 per replica"


def test_a_step_down_waits_downscale_delay() -> None:
    sim = Sim(auto(target_ongoing_requests=2), lambda t: 2.0 if t > 60 else 10.0, target=5)
    sim.run(600)
    assert sim.history == []  # wanted since ~70 s: not yet 600 s
    sim.run(120)
    assert sim.moves() == [1]
    ((at, _),) = sim.history
    assert 660 <= at <= 700


def test_a_change_of_direction_starts_the_wait_again() -> None:
    load = {"v": 10.0}
    sim = Sim(auto(target_ongoing_requests=2, look_back_period_s=10), lambda t: load["v"])
    sim.run(20)  # wanting up for 20 s of 30
    load["v"] = 0.0
    sim.run(20)  # now wanting down: the up wait is gone
    load["v"] = 10.0
    sim.run(20)
    assert sim.history == []
    sim.run(20)
    assert sim.moves() == [5]


def square(on_s: float, high: float = 10.0) -> Callable[[float], float]:
    return lambda t: high if (t // on_s) % 2 == 0 else 0.0


def test_oscillating_load_does_not_flap_ray_18925_26455() -> None:
    """A square wave (10 in flight for a minute, none for a minute) for two hours: the count
    rises to what the peaks ask for and stays; it never goes back and forth."""
    sim = Sim(auto(target_ongoing_requests=2), square(60), start_s=5)
    sim.run(7200)
    assert sim.moves() == [5]
    # Shorter delays (ray #26455): a trough as seen through the 30 s window (70 s) outlasts the
    # 60 s delay once, one step down to what the window then asks; then it holds for two hours.
    quick = Sim(auto(target_ongoing_requests=2, upscale_delay_s=5, downscale_delay_s=60),
                square(40), start_s=5)  # fmt: skip
    quick.run(7200)
    assert quick.moves() == [5, 4]
    # A trough longer than the delay is a real drop in load: followed once per trough (the
    # way up in two steps, as the look-back window fills).
    slow = Sim(auto(target_ongoing_requests=2, upscale_delay_s=5, downscale_delay_s=60),
               square(300))  # fmt: skip
    slow.run(1200)
    assert slow.moves() == [5, 1, 3, 5, 1]


def test_more_replicas_do_not_lower_the_load_that_scaled_them_ray_18925() -> None:
    """The input is the deployment's total in flight, not the per-replica average, so scaling
    up does not make the next sample ask to scale down again."""
    sim = Sim(
        auto(target_ongoing_requests=2, upscale_delay_s=0, downscale_delay_s=30), lambda t: 10.0
    )
    sim.run(3600)
    assert sim.moves() == [5]


def test_a_big_upscaling_factor_overshoots_once_then_settles_ray_63279() -> None:
    c = auto(max_replicas=2000, target_ongoing_requests=0.1, upscaling_factor=10)
    sim = Sim(c, lambda t: 50.0, target=100)
    sim.run(4 * 3600)
    assert sim.moves() == [2000, 500]  # one overshoot, corrected after downscale_delay_s


def test_from_zero_one_waiting_request_scales_up_at_once() -> None:
    c = auto(min_replicas=0, upscale_delay_s=300)
    state = step(c, ScaleState(target=0), [Sample(1.0, 1.0)], running=0, now=1.0)
    assert state.target == 1 and state.last is not None
    assert (
        state.last.reason
        == "scaling up 0 -> 1: 1 request in flight, waiting with no replica running"
    )
    big = step(auto(min_replicas=0, upscaling_factor=3), ScaleState(0), [Sample(1, 1)], 0, 1)
    assert big.target == 3
    starting = step(c, ScaleState(target=1), [Sample(1.0, 4.0)], running=0, now=1.0)
    assert starting.target == 1  # one is already starting: nothing more at once


def test_idle_goes_to_zero_after_its_delay_and_through_one() -> None:
    c = auto(min_replicas=0, downscale_delay_s=60, downscale_to_zero_delay_s=300)
    sim = Sim(c, lambda t: 0.0, target=3)
    sim.run(3600)
    assert sim.moves() == [1, 0]
    (down_at, _), (zero_at, _) = sim.history
    assert 60 <= down_at <= 70 and 300 <= zero_at - down_at <= 310
    same = Sim(auto(min_replicas=0, downscale_delay_s=60), lambda t: 0.0, target=1)
    same.run(120)
    assert same.moves() == [0] and same.history[0][0] <= 70  # without its own delay: downscale's


def test_no_samples_holds_and_bounds_clamp_a_changed_config() -> None:
    state = ScaleState(target=4, wanting=1, since=0.0)
    assert step(auto(), state, [], 4, 100.0).target == 4
    assert rebound(auto(min_replicas=2, max_replicas=3), state).target == 3
    assert rebound(auto(min_replicas=5, max_replicas=8), state).target == 5


def test_seed_is_the_initial_count_or_what_runs() -> None:
    c = auto(min_replicas=1, max_replicas=4, initial_replicas=3)
    assert seed(c, live=0).target == 3
    assert seed(c, live=2).target == 2  # a restarted reconciler keeps what runs
    assert seed(c, live=9).target == 4
    assert seed(auto(min_replicas=0), live=0).target == 0


@pytest.mark.parametrize("how,expected", [("mean", 3), ("max", 5), ("min", 1)])
def test_the_aggregation_function_decides_what_the_window_says(how: str, expected: int) -> None:
    loads = iter([2.0, 10.0, 6.0])  # mean 6, max 10, min 2 over the window
    c = auto(target_ongoing_requests=2, upscale_delay_s=0, aggregation_function=how)
    samples = [Sample(float(t), next(loads)) for t in (10, 20, 30)]
    state = step(c, ScaleState(target=1), samples, running=1, now=30.0)
    assert state.target == max(1, math.ceil({"mean": 6, "max": 10, "min": 2}[how] / 2))
    assert state.target == expected
