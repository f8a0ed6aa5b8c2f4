"""The wait after repeated git or engine failures: one interval, doubling, capped, for any
count of failures in a row (a long outage with frequent passes must not overflow)."""

from __future__ import annotations

from reconciler.reconcile.core import MAX_BACKOFF_S, transient_backoff_s


def test_doubles_from_one_interval_up_to_the_cap() -> None:
    assert [transient_backoff_s(1.0, n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert transient_backoff_s(1.0, 50) == MAX_BACKOFF_S


def test_an_interval_longer_than_the_cap_is_the_wait() -> None:
    assert transient_backoff_s(3600.0, 1) == 3600.0
    assert transient_backoff_s(3600.0, 9) == 3600.0


def test_any_number_of_failures_in_a_row() -> None:
    assert transient_backoff_s(1.0, 1025) == MAX_BACKOFF_S  # 2.0 ** 1024 overflows a float
    assert transient_backoff_s(15.0, 10**9) == max(15.0, MAX_BACKOFF_S)
