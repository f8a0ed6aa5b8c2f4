"""Routing for `@serve.multiplexed` deployments (by the model-id header, consistent hashing) and
the route prefix the ingress deployment is told; `haproxy -c` accepts both."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from test_routing import app_config, haproxy_check, render

from reconciler.routing import backend_name


def _backend(text: str, app: str, deployment: str) -> str:
    start = text.index(f"\nbackend {backend_name(app, deployment)}\n")
    end = text.find("\nbackend ", start + 1)
    return text[start : end if end > 0 else None]


def test_multiplexed_deployment_balances_on_the_model_id_header(tmp_path: Path) -> None:
    cfg = app_config(("models", "/models", 2))
    app = cfg.applications[0]
    deployments = tuple(
        replace(d, multiplexed=True) if d.name == "Worker" else d for d in app.deployments
    )
    cfg = replace(cfg, applications=(replace(app, deployments=deployments),))
    text = render(cfg)
    worker, ingress = _backend(text, "models", "Worker"), _backend(text, "models", "Ingress")
    assert "balance hdr(serve_multiplexed_model_id)" in worker
    assert "hash-type consistent" in worker and "leastconn" not in worker
    assert "balance leastconn" in ingress
    haproxy_check(text, tmp_path)


def test_ingress_deployment_is_told_its_full_route_prefix(tmp_path: Path) -> None:
    text = render(app_config(("fruit", "/fruit", 1), ("root", "/", 1), root_path="/api"))
    assert "set-header x-serve-route-prefix /api/fruit" in _backend(text, "fruit", "Ingress")
    assert "set-header x-serve-route-prefix /api\n" in _backend(text, "root", "Ingress") + "\n"
    assert "x-serve-route-prefix" not in _backend(text, "fruit", "Worker")
    odd = render(app_config(("odd", "/a b%", 1)))
    assert "set-header x-serve-route-prefix /a%%20b%%25" in odd
    haproxy_check(text, tmp_path)
    haproxy_check(odd, tmp_path)
    plain = render(app_config(("default", "/", 1)))
    assert "x-serve-route-prefix" not in plain
