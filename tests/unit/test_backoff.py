"""The one backoff: replica start failures (1, 2, 4 ... 64 s, as Serve) and the loop while git,
the engine or the disk fail (one interval, doubling, capped), for any count of failures in a row
(a long outage with frequent passes must not overflow)."""

from __future__ import annotations

from reconciler.backoff import MAX_BACKOFF_S, backoff_s


def test_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff_s(1.0, n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_s(1.0, 50) == MAX_BACKOFF_S == 64.0  # Serve's SERVE_MAX_BACKOFF_TIME_S


def test_a_base_longer_than_the_cap_is_the_wait() -> None:
    assert backoff_s(3600.0, 1) == 3600.0
    assert backoff_s(3600.0, 9) == 3600.0


def test_any_number_of_failures_in_a_row() -> None:
    assert backoff_s(1.0, 1025) == MAX_BACKOFF_S  # 2.0 ** 1024 overflows a float
    assert backoff_s(15.0, 10**9) == max(15.0, MAX_BACKOFF_S)
    assert backoff_s(1.0, 0) == 1.0  # a count below one is the first failure
