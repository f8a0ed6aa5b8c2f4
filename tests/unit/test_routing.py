"""The HAProxy config: structure, determinism, escaping, and `haproxy -c` on the real binary."""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from test_plan import config, rep, spec

from reconciler.model import (
    ApplicationSpec,
    HttpOptions,
    ObservedReplica,
    ServeConfig,
)
from reconciler.routing import backend_name, hq, render_haproxy, url_path

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def app_config(*apps: tuple[str, str | None, int], root_path: str = "") -> ServeConfig:
    """One app per (name, route_prefix, replicas): an ingress `Ingress` and a helper `Worker`."""
    specs = []
    for name, prefix, n in apps:
        specs += [
            spec("Ingress", app=name, n=n, route_prefix=prefix, is_ingress=True),
            spec("Worker", app=name, n=1),
        ]
    cfg = config(*specs)
    prefixes = {name: prefix for name, prefix, _ in apps}
    return replace(
        cfg,
        http=HttpOptions(root_path=root_path),
        applications=tuple(replace(a, route_prefix=prefixes[a.name]) for a in cfg.applications),
    )


def serving(cfg: ServeConfig, ip_base: int = 2) -> list[ObservedReplica]:
    replicas = []
    for n, s in enumerate(cfg.deployments()):
        for i in range(s.num_replicas):
            replicas.append(rep(s, i, network_ip=f"172.30.{n}.{ip_base + i}"))
    return replicas


def render(cfg: ServeConfig, replicas: list[ObservedReplica] | None = None) -> str:
    replicas = serving(cfg) if replicas is None else replicas
    return render_haproxy(cfg, replicas, frozenset(r.container_id for r in replicas))


def haproxy_check(text: str, tmp_path: Path) -> None:
    cfg_file = tmp_path / "haproxy.cfg"
    cfg_file.write_text(text)
    result = subprocess.run(
        [HAPROXY, "-c", "-f", str(cfg_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def lines_of(text: str, section: str) -> list[str]:
    """The lines of one section (`frontend ingress`, `backend be_...`)."""
    block = text.split(f"\n{section}\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines()]


# --- structure -------------------------------------------------------------------------------


def test_longest_prefix_first_root_last_and_none_unrouted() -> None:
    cfg = app_config(("root", "/", 1), ("fruit", "/fruit", 2), ("deep", "/fruit/x", 1))
    cfg = replace(
        cfg,
        applications=(
            *cfg.applications,
            replace(cfg.applications[0], name="hidden", route_prefix=None),
        ),
    )
    ingress = lines_of(render(cfg), "frontend ingress")
    uses = [line for line in ingress if line.startswith("use_backend")]
    assert uses == [
        # the replicas' control endpoints are never routed, even to an application at "/"
        "use_backend no_route if { path_beg /-/ }",
        f"use_backend {backend_name('deep', 'Ingress')} if "
        "{ path /fruit/x } || { path_beg /fruit/x/ }",
        f"use_backend {backend_name('fruit', 'Ingress')} if "
        "{ path /fruit } || { path_beg /fruit/ }",
        f"use_backend {backend_name('root', 'Ingress')}",
    ]
    assert ingress[-1] == "default_backend no_route"


def test_root_path_is_mounted_before_every_route() -> None:
    cfg = app_config(("root", "/", 1), ("fruit", "/fruit", 1), root_path="/api/")
    uses = [x for x in lines_of(render(cfg), "frontend ingress") if x.startswith("use_backend")]
    assert [u.split(" if ", 1)[1] for u in uses] == [
        "{ path_beg /-/ }",
        "{ path /api/fruit } || { path_beg /api/fruit/ }",
        "{ path /api } || { path_beg /api/ }",
    ]


def test_router_has_a_call_path_per_deployment() -> None:
    cfg = app_config(("fruit", "/fruit", 1))
    router = lines_of(render(cfg), "frontend router")
    assert router[1:-1] == [
        f"use_backend {backend_name('fruit', 'Ingress')} if {{ path_beg /-/call/fruit/Ingress/ }}",
        f"use_backend {backend_name('fruit', 'Worker')} if {{ path_beg /-/call/fruit/Worker/ }}",
    ]


def test_backends_hold_only_routable_replicas_with_an_address() -> None:
    cfg = app_config(("fruit", "/fruit", 3))
    ingress = next(s for s in cfg.deployments() if s.name == "Ingress")
    ingress = replace(ingress, max_ongoing_requests=7)
    cfg = replace(
        cfg,
        applications=(
            replace(cfg.applications[0], deployments=(ingress, cfg.applications[0].deployments[1])),
        ),
    )
    replicas = [
        rep(ingress, 0, network_ip="10.0.0.5"),
        rep(ingress, 1, network_ip="10.0.0.6"),  # not routable: being drained
        rep(ingress, 2, network_ip=None),  # no address yet
        rep(ingress, 3, network_ip="10.0.0.8; bind :1"),  # never trusted
    ]
    routable = frozenset(
        {replicas[0].container_id, replicas[2].container_id, replicas[3].container_id}
    )
    text = render_haproxy(cfg, replicas, routable)
    backend = lines_of(text, f"backend {backend_name('fruit', 'Ingress')}")
    servers = [line for line in backend if line.startswith("server ")]
    name = f"fruit-Ingress-0_{replicas[0].container_id[:12]}"  # name and id: see naming.py
    options = "check inter 2s fall 2 rise 1 maxconn 7 pool-max-conn 7 pool-purge-delay 5s"
    assert servers == [f"server {name} 10.0.0.5:8000 {options}"]
    assert "option httpchk GET /-/ready" in backend
    assert "bind :1" not in text


def test_unavailable_deployment_answers_503_with_its_names() -> None:
    text = render(app_config(("fruit", "/fruit", 1)), [])
    backend = lines_of(text, f"backend {backend_name('fruit', 'Worker')}")
    assert (
        "http-error status 503 content-type application/json string "
        '"{\\"error\\": \\"no healthy replica of deployment \\\'Worker\\\' in application '
        "\\'fruit\\'\\\"}\""
    ) in backend
    assert not any("nbsrv" in line for line in backend)  # nbsrv reads 0 right after a reload
    assert not [line for line in backend if line.startswith("server ")]


def test_server_timeout_follows_request_timeout() -> None:
    cfg = app_config(("fruit", "/fruit", 1))
    assert "timeout server 60000ms" in render(cfg)
    cfg = replace(cfg, http=HttpOptions(request_timeout_s=2.5))
    assert "timeout server 2500ms" in render(cfg)


def test_same_state_renders_identical_text_whatever_the_order() -> None:
    cfg = app_config(("b", "/b", 3), ("a", "/a", 2))
    replicas = serving(cfg)
    first = render(cfg, replicas)
    shuffled = replicas[:]
    random.Random(7).shuffle(shuffled)
    assert render(cfg, shuffled) == first
    reordered = replace(cfg, applications=cfg.applications[::-1])
    assert render(reordered, replicas) == first


# --- escaping ----------------------------------------------------------------------------------


def test_hq_escapes_everything_haproxy_interprets() -> None:
    assert hq("plain") == '"plain"'
    assert hq("a\"b'c\\d$e#f g") == '"a\\"b\\\'c\\\\d\\$e\\#f g"'
    assert hq("line\nbreak é") == '"line\\x0abreak \\xc3\\xa9"'


def test_url_path_keeps_a_safe_alphabet() -> None:
    assert url_path("/fruit/v1.2_x-y~") == "/fruit/v1.2_x-y~"
    assert url_path("/a b#c}") == "/a%20b%23c%7D"


def test_hostile_names_and_prefixes_stay_inside_their_words(tmp_path: Path) -> None:
    cfg = app_config(("we ird$app#x", "/pa th/#{x}", 1))
    text = render(cfg)
    assert "{ path_beg /pa%20th/%23%7Bx%7D/ }" in text
    assert "{ path_beg /-/call/we%20ird%24app%23x/Ingress/ }" in text
    assert "application \\'we ird\\$app\\#x\\'" in text  # inside one quoted word
    haproxy_check(text, tmp_path)


# --- the real binary ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        app_config(("default", "/", 2)),
        app_config(("fruit", "/fruit", 2), ("veg", "/veg", 1), ("quiet", None, 1)),
        app_config(("fruit", "/fruit", 1), ("root", "/", 1), root_path="/api"),
        ServeConfig(shape="multi", http=HttpOptions(), applications=()),
    ],
    ids=["single", "multi", "root_path", "empty"],
)
def test_haproxy_accepts_the_config(cfg: ServeConfig, tmp_path: Path) -> None:
    haproxy_check(render(cfg), tmp_path)
    haproxy_check(render(cfg, []), tmp_path)  # no replicas at all


def test_haproxy_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check itself can fail (so the tests above mean something)."""
    with pytest.raises(AssertionError):
        haproxy_check(
            render(app_config(("a", "/a", 1))) + "\nbackend x\n    nonsense 1\n", tmp_path
        )


def test_application_without_its_ingress_deployment_gets_no_route() -> None:
    cfg = app_config(("fruit", "/fruit", 1))
    app = cfg.applications[0]
    broken = ApplicationSpec(app.name, "/fruit", app.import_path, "Missing", app.deployments)
    text = render(replace(cfg, applications=(broken,)))
    assert "path_beg /fruit/" not in text
    # its deployments are still reachable through the router
    assert "/-/call/fruit/Ingress/" in text
