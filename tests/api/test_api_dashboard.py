"""The dashboard over HTTP: what the page shows from a snapshot (pin, replicas, the timeline with
errors at file:line:col, events), that what users wrote is escaped, the page's own headers and
assets, and the cheap poll it makes (`/dashboard.json`)."""

from __future__ import annotations

from dataclasses import replace

from api_support import COMMIT_A, COMMIT_B, LiveApi, MakeApi, dashboard_snapshot

from reconciler.model import AutoscalingStatus, DeploymentStatus, EngineNode


def test_the_page_shows_the_snapshot(api: LiveApi) -> None:
    api.state.snapshot = dashboard_snapshot()
    page = api.client.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    # the pin, and the branch waiting behind it
    assert "Pinned at" in html and "waiting behind the pin" in html
    assert 'data-action="unpin"' in html and 'data-action="rollback"' in html
    # applications -> deployments -> replicas
    assert "MangoStand" in html and "serve-t-default-MangoStand-1" in html
    assert "ValueError: price must be positive" in html and ">old</span>" in html
    # the timeline: a refused commit's error at file:line:col, an applied one's changes
    assert "<code>serve_config.yaml:31:5</code> unknown key" in html
    assert "reconfigured in place (user_config changed)" in html
    assert "rollback from commit bbbbbbbbbbbb" in html and "by Ada" in html
    assert f'data-commit="{COMMIT_A}"' in html
    # events
    assert "unhealthy" in html and "version v1aaaaaaaaaa" in html


def test_the_applied_commits_warnings_are_shown(api: LiveApi) -> None:
    snap = dashboard_snapshot()
    warning = "serve_config.yaml:7:5: warning: max_queued_requests is accepted and ignored"
    api.state.snapshot = replace(snap, commits=replace(snap.commits, warnings=(warning,)))
    html = api.client.get("/").text
    assert "<code>serve_config.yaml:7:5</code> warning: max_queued_requests" in html


def test_a_swarms_nodes_and_an_autoscaled_deployment(api: LiveApi) -> None:
    snap = dashboard_snapshot()
    app = snap.applications[0]
    scaled = replace(
        app.deployments[0],
        status=DeploymentStatus.UPSCALING,
        autoscaling=AutoscalingStatus(0, 8, 3, in_flight=2.6, decision="scaling up 1 -> 3"),
    )
    lost = EngineNode("lab-node3", "10.199.0.13", "down", False, "heartbeat failure", "worker")
    ok = EngineNode("lab-node1", "10.199.0.11", "ready", True, role="manager", replicas=4)
    api.state.snapshot = replace(
        snap,
        applications=(replace(app, deployments=(scaled, *app.deployments[1:])),),
        nodes=(ok, lost),
    )
    html = api.client.get("/").text
    assert '<span class="chip busy">UPSCALING</span>' in html
    assert "(autoscaling 0-8)" in html and "2.6" not in html  # bounds, not the moving load
    assert '<section id="nodes">' in html and "heartbeat failure" in html
    assert (
        '<span class="chip bad">down</span>' in html
        and '<span class="chip ok">ready</span>' in html
    )
    api.state.snapshot = snap  # a single host: no nodes section
    assert 'id="nodes"' not in api.client.get("/").text


def test_what_users_wrote_is_escaped(api: LiveApi) -> None:
    api.state.snapshot = dashboard_snapshot()
    html = api.client.get("/").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # the page's own, from /dashboard.js


def test_the_page_locks_itself_down(api: LiveApi) -> None:
    headers = api.client.get("/").headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    script = api.client.get("/dashboard.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "sessionStorage" in script.text and "document.cookie" not in script.text
    assert api.client.get("/dashboard.css").headers["Content-Type"].startswith("text/css")


def test_without_a_token_the_page_has_no_buttons(make_api: MakeApi) -> None:
    live = make_api(api_token=None)
    live.state.snapshot = dashboard_snapshot()
    html = live.client.get("/").text
    assert 'data-action="' not in html and 'id="token-form"' not in html
    assert "--api-token-file" in html


def test_the_poll_sends_the_html_only_when_it_changed(api: LiveApi) -> None:
    api.state.snapshot = dashboard_snapshot()
    first = api.client.get("/dashboard.json").json()
    assert first["pinned_commit"] == COMMIT_A and first["waiting_behind_pin"] is True
    assert "html" in first and "MangoStand" in first["html"]
    same = api.client.get("/dashboard.json", params={"since": first["rev"]}).json()
    assert same["rev"] == first["rev"] and "html" not in same
    # a new pass that changes nothing visible keeps the revision
    snap = api.state.snapshot
    api.state.snapshot = replace(snap, loop=replace(snap.loop, passes=snap.loop.passes + 1))
    quiet = api.client.get("/dashboard.json", params={"since": first["rev"]}).json()
    assert quiet["rev"] == first["rev"] and quiet["passes"] == snap.loop.passes + 1
    # one that does (the pin goes) gets a new revision and the HTML
    snap = api.state.snapshot
    api.state.snapshot = replace(snap, commits=replace(snap.commits, pinned=None))
    moved = api.client.get("/dashboard.json", params={"since": first["rev"]}).json()
    assert moved["rev"] != first["rev"] and "Pinned at" not in moved["html"]
    assert f'data-action="pin" data-commit="{COMMIT_A}"' in moved["html"]
    assert COMMIT_B in moved["html"]


def test_before_the_first_deploy(api: LiveApi) -> None:
    page = api.client.get("/")
    assert page.status_code == 200 and "NOT_STARTED" in page.text
    assert "No commit judged yet" in page.text
