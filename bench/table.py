"""The one table `bench/run` prints (and RESULTS.md shows): one row per figure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _f(value: Any, unit: str = "", digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _converge(data: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for n, d in data.items():
        yield (
            f"converge N={n}: reconciler / compose / docker run",
            f"{d['reconciler_s']:.2f}s / {d['compose_s']:.2f}s / {d['run_s']:.2f}s",
            f"a/c {d['ratio_reconciler_vs_run']:.2f}, a/b {d['ratio_reconciler_vs_compose']:.2f}",
        )
        if d.get("reconciler_first_s") is not None:
            build = d.get("image_build_s")
            yield (
                f"converge N={n}, first (the image built first)",
                f"{d['reconciler_first_s']:.2f}s",
                f"of which the image build {build:.2f}s" if build is not None else "",
            )


def _scale(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield ("scale 10 -> 30", _f(d["scale_up_s"], "s"), f"restarted {d['restarted']} (all steps)")
    yield ("user_config change, 30 replicas", _f(d["user_config_s"], "s"), "")
    yield ("scale 30 -> 10 (drained, removed)", _f(d["scale_down_s"], "s"), "")


def _rolling(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield (
        f"rolling code update, {d['replicas']} replicas",
        _f(d["rollout_s"], "s"),
        f"failed {d['failed_requests']} of {d['requests']} requests via ingress",
    )


def _push(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield (f"push -> served ({d['replicas']} replicas), poll 1s", _f(d["poll_1s_s"], "s"), "")
    yield (f"push -> served ({d['replicas']} replicas), webhook", _f(d["webhook_s"], "s"), "")


def _idle(data: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for n, d in data.items():
        yield (
            f"idle pass, N={n}",
            f"{d['wall_ms']:.1f}ms wall, {d['cpu_ms']:.1f}ms CPU",
            f"{d['docker_api_calls']:g} Docker API calls",
        )


def _memory(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield (f"daemon VmRSS, {d['replicas']} replicas", _f(d["rss_mib"], " MiB", 1), "")


def _status(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield (
        "GET /status idle (wrk -c8)",
        f"{d['idle_rps']:.0f} req/s",
        f"p99 {d['idle_p99_ms']:.1f}ms",
    )
    yield ("GET /status during rollout", f"{d['rollout_rps']:.0f} req/s",
           f"p99 {d['rollout_p99_ms']:.1f}ms")  # fmt: skip
    yield (
        f"rollout ({d['replicas']} replicas) without / with wrk",
        f"{d['rollout_s']:.2f}s / {d['rollout_under_wrk_s']:.2f}s",
        f"x{d['rollout_slowdown']:.2f}",
    )
    if "rate_rollout_p99_ms" in d:
        yield (
            f"GET /status at {d['rate']:.0f}/s: idle / during rollout",
            f"p99 {d['rate_idle_p99_ms']:.1f}ms / {d['rate_rollout_p99_ms']:.1f}ms",
            f"p50 during rollout {d['rate_rollout_p50_ms']:.1f}ms, errors {d['rate_errors']}",
        )
        yield (
            f"rollout without / with {d['rate']:.0f} req/s",
            f"{d['rollout_s']:.2f}s / {d['rollout_under_rate_s']:.2f}s",
            f"x{d['rollout_rate_slowdown']:.2f}",
        )


def _dashboard(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield ("GET / (the page, wrk -c8)", f"{d['page_rps']:.0f} req/s",
           f"p99 {d['page_p99_ms']:.1f}ms")  # fmt: skip
    yield ("GET /dashboard.json?since=REV (wrk -c8)", f"{d['poll_rps']:.0f} req/s",
           f"p99 {d['poll_p99_ms']:.1f}ms")  # fmt: skip
    yield (
        f"GET /status at {d['rate']:.0f}/s idle: alone / {d['dashboard_rate']:.0f} polls/s "
        "(unchanged page) / same with the HTML",
        f"p99 {d['idle_p99_ms']:.1f}ms / {d.get('idle_since_p99_ms', 0):.1f}ms / "
        f"{d['idle_dash_p99_ms']:.1f}ms",
        f"errors {d['errors']}",
    )
    yield (
        f"GET /status at {d['rate']:.0f}/s during rollout: alone / with dashboards",
        f"p99 {d['rollout_p99_ms']:.1f}ms / {d['rollout_dash_p99_ms']:.1f}ms",
        "",
    )
    yield (
        f"rollout ({d['replicas']} replicas): alone / with dashboards",
        f"{d['rollout_s']:.2f}s / {d['rollout_dash_s']:.2f}s",
        f"x{d['rollout_dash_ratio']:.2f}",
    )
    yield (
        "deployment statuses, 100 replicas: without / with rows and events",
        f"{d['statuses_us']:.0f}us / {d['statuses_with_extras_us']:.0f}us",
        f"x{d['extras_ratio']:.2f}; HTML render {d['render_ms']:.1f}ms once per snapshot",
    )


def _ingress(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield ("via ingress (wrk -c8)", f"{d['ingress_rps']:.0f} req/s",
           f"p50 {d['ingress_p50_ms']:.2f}ms p99 {d['ingress_p99_ms']:.2f}ms")  # fmt: skip
    yield ("one replica directly", f"{d['direct_rps']:.0f} req/s",
           f"p50 {d['direct_p50_ms']:.2f}ms p99 {d['direct_p99_ms']:.2f}ms")  # fmt: skip
    yield ("ingress / direct", f"x{d['rps_ratio_ingress_vs_direct']:.2f} req/s",
           f"x{d['p99_ratio_ingress_vs_direct']:.2f} p99")  # fmt: skip
    if "inside_ingress_rps" in d:
        yield (
            "ingress / the replica at its network address",
            f"{d['inside_ingress_rps']:.0f} / {d['inside_direct_rps']:.0f} req/s",
            f"x{d['inside_rps_ratio_ingress_vs_direct']:.2f} req/s, "
            f"x{d['inside_p99_ratio_ingress_vs_direct']:.2f} p99 (no docker-proxy either way)",
        )
    if "close_ingress_rps" in d:
        yield (
            "new connection per request: ingress / direct",
            f"{d['close_ingress_rps']:.0f} / {d['close_direct_rps']:.0f} req/s",
            f"x{d['close_rps_ratio_ingress_vs_direct']:.2f} req/s, "
            f"x{d['close_p99_ratio_ingress_vs_direct']:.2f} p99",
        )
    if "eight_ingress_rps" in d:
        yield (
            "8 replicas: via ingress / sum of 8 direct (8 wrk -c8)",
            f"{d['eight_ingress_rps']:.0f} / {d['eight_direct_sum_rps']:.0f} req/s",
            f"x{d['eight_rps_ratio']:.2f}, errors {d['eight_errors']}, "
            f"reloads {d.get('reloads', '?')}",
        )
    if "bridge_ingress_rps" in d:
        yield (
            "--ingress-network bridge: via ingress / direct",
            f"{d['bridge_ingress_rps']:.0f} / {d['bridge_direct_rps']:.0f} req/s",
            f"x{d['bridge_rps_ratio_ingress_vs_direct']:.2f} req/s, "
            f"x{d['bridge_p99_ratio_ingress_vs_direct']:.2f} p99",
        )


def _autoscale(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield (
        "ramp 0 -> 60 req/s -> 0: requests failed",
        f"{d['failed']} of {d['requests']}",
        f"peak {d['peak_replicas']} replicas; plot: {Path(d.get('png', '-')).name}",
    )
    if "from_zero_first_wait_ms" in d:
        yield (
            "from zero: the first request's wait",
            f"{d['from_zero_first_wait_ms'] / 1000:.2f}s",
            "held in the ingress while one replica started",
        )
    for rise in d["rises"]:
        first, reached = rise["first_new_serving_s"], rise["target_serving_s"]
        decided = rise.get("decided_after_s")
        yield (
            f"load {rise['from_rate']} -> {rise['to_rate']} req/s: first new replica serving",
            "none needed" if first is None else f"{first:.2f}s",
            f"decided after {'-' if decided is None else f'{decided:.2f}s'}; "
            f"{rise['serving_before']} -> {rise['target']} replicas in "
            + ("-" if reached is None else f"{reached:.2f}s")
            + " (upscale_delay_s 1, look-back 3 s)",
        )


def _admission(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    f = d["flood"]
    yield (f"a {f['asked']:,}-replica commit: containers / cap",
           f"{f['containers']} / {f['replica_cap']}",
           f"{f['pending']:,} pending, {f['logical_cpus']:g} logical CPUs")  # fmt: skip
    yield ("pass with them pending / idle pass",
           f"x{f['wall_ratio']:.2f} wall, x{f['cpu_ratio']:.2f} CPU",
           f"{f['flooded_pass_wall_ms']:.1f} / {f['idle_pass_wall_ms']:.1f} ms, "
           f"{f['docker_api_calls']:.0f} Docker API calls")  # fmt: skip
    q = d["quota"]
    yield (f"num_cpus {q['num_cpus']:g} via ingress: CPU weight / hard quota",
           f"{q['weight_rps']:.0f} / {q['quota_rps']:.0f} req/s",
           f"x{q['rps_ratio_weight_vs_quota']:.1f}; p50 {q['weight_p50_ms']:.1f} / "
           f"{q['quota_p50_ms']:.1f} ms")  # fmt: skip


def _swarm(d: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    n = d["replicas"]
    yield (
        f"swarm converge N={n} over {d['nodes']} nodes: reconciler / service create",
        f"{d['reconciler_s']:.2f}s / {d['service_create_s']:.2f}s",
        f"ratio {d['ratio']:.2f}; replicas on {d['spread']} nodes",
    )
    yield (f"swarm converge N={n}, first (image built, pushed, pulled)",
           _f(d["reconciler_first_s"], "s"), "")  # fmt: skip
    yield (
        f"swarm worker lost, N={n}: node down / status says so / all RUNNING",
        f"{d['loss_down_s']:.2f}s / +{d['loss_status_after_down_s']:.2f}s / "
        f"{d['loss_recovered_s']:.2f}s",
        f"service create's tasks all answering again: {d['baseline_recovered_s']:.2f}s",
    )


ROWS = {
    "converge": _converge,
    "scale": _scale,
    "rolling": _rolling,
    "push": _push,
    "idle-pass": _idle,
    "memory": _memory,
    "status-api": _status,
    "dashboard": _dashboard,
    "ingress": _ingress,
    "admission": _admission,
    "autoscale": _autoscale,
    "swarm": _swarm,
}


def rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    for section, data in report["sections"].items():
        out.extend((section, *row) for row in ROWS[section](data))
    return out


def render(report: dict[str, Any], markdown: bool = False) -> str:
    table = rows(report)
    header = ("section", "figure", "value (median)", "note")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|"]
        lines += ["| " + " | ".join(r) + " |" for r in table]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in table]
    m = report["machine"]
    lines.append(
        f"\n{report['mode']} run, {report.get('total_seconds', '?')}s; {m['cores']} cores, "
        f"{m['memory_gib']} GiB, Docker {m['docker']}, kernel {m['kernel']}"
    )
    return "\n".join(lines)
