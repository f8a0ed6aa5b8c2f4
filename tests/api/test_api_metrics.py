"""Metrics as the loop records them: names, labels, and series that go away when they are stale."""

from __future__ import annotations

from reconciler.metrics import Metrics


def _lines(metrics: Metrics, prefix: str) -> list[str]:
    body, _ = metrics.render()
    return [line for line in body.decode().splitlines() if line.startswith(prefix)]


def test_content_type_is_prometheus_text() -> None:
    _, content_type = Metrics().render()
    assert content_type.startswith("text/plain")


def test_known_outcomes_and_kinds_start_at_zero() -> None:
    metrics = Metrics()
    assert 'serve_reconciler_passes_total{outcome="invalid"} 0.0' in _lines(
        metrics, "serve_reconciler_passes_total"
    )
    assert 'serve_reconciler_failures_total{kind="source"} 0.0' in _lines(
        metrics, "serve_reconciler_failures_total"
    )


def test_pass_duration_lands_in_buckets() -> None:
    metrics = Metrics()
    metrics.pass_finished(0.3, "ok")
    metrics.pass_finished(7.0, "error")
    buckets = _lines(metrics, "serve_reconciler_pass_duration_seconds_bucket")
    assert 'serve_reconciler_pass_duration_seconds_bucket{le="0.5"} 1.0' in buckets
    assert 'serve_reconciler_pass_duration_seconds_bucket{le="10.0"} 2.0' in buckets
    assert _lines(metrics, "serve_reconciler_pass_duration_seconds_sum") == [
        "serve_reconciler_pass_duration_seconds_sum 7.3"
    ]


def test_applied_commit_has_one_series() -> None:
    metrics = Metrics()
    metrics.set_applied_commit("a" * 40)
    metrics.set_applied_commit("b" * 40)
    assert _lines(metrics, "serve_reconciler_applied_commit_info") == [
        f'serve_reconciler_applied_commit_info{{commit="{"b" * 40}"}} 1.0'
    ]


def test_stale_replica_series_are_removed() -> None:
    metrics = Metrics()
    metrics.set_replicas({("fruit", "Mango", "STARTING"): 2, ("fruit", "Pear", "RUNNING"): 1})
    metrics.set_replicas({("fruit", "Mango", "RUNNING"): 2})
    assert _lines(metrics, "serve_reconciler_replicas{") == [
        'serve_reconciler_replicas{app="fruit",deployment="Mango",state="RUNNING"} 2.0'
    ]
    metrics.set_replicas({})
    assert _lines(metrics, "serve_reconciler_replicas{") == []


def test_two_instances_do_not_share_a_registry() -> None:
    first, second = Metrics(), Metrics()
    first.poll_error()
    assert _lines(second, "serve_reconciler_poll_errors_total") == [
        "serve_reconciler_poll_errors_total 0.0"
    ]
    assert _lines(first, "serve_reconciler_poll_errors_total") == [
        "serve_reconciler_poll_errors_total 1.0"
    ]
