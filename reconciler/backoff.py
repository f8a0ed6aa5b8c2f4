"""The one exponential backoff of the reconciler, and its cap.

Two things back off: a deployment whose replicas keep failing to start (Serve's 1, 2, 4 ... 64 s)
and the loop while git, the engine or the state directory is down (one poll interval, doubling).
Both use `backoff_s` with `MAX_BACKOFF_S`, Serve's SERVE_MAX_BACKOFF_TIME_S. Pure.
"""

from __future__ import annotations

MAX_BACKOFF_S = 64.0
_MAX_DOUBLINGS = 32  # 2.0 ** 1024 overflows; the cap is reached long before


def backoff_s(base_s: float, attempt: int, cap_s: float = MAX_BACKOFF_S) -> float:
    """The wait after the `attempt`th failure in a row: `base_s`, then doubling, up to
    max(base_s, cap_s) (a base longer than the cap is never shortened), for any count."""
    doublings = min(max(attempt, 1) - 1, _MAX_DOUBLINGS)
    return float(min(base_s * 2.0**doublings, max(base_s, cap_s)))
