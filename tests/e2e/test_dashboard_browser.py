"""The dashboard in a real browser (Debian's Chromium driven by Playwright) over a real daemon on
the real engine, serving the fruit stand from a local git repository: it shows the running
stand, then a refused commit with its file:line:col error, then a pin and an unpin made by
clicking (with the token entered in the page), and stays correct while every replica rolls. The
page is never reloaded: it follows the daemon by polling. Screenshots are saved under the
directory the test prints (the README's come from here: docs/dashboard-*.png)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.runtime.docker_engine import DockerEngine
from tests.conftest import BASE_IMAGE, new_instance_name, remove_owned
from tests.support import EXAMPLES, Daemon, GitRemote, free_port, git, wait_for

pytestmark = pytest.mark.docker

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TOKEN = "dashboard-test-token-42"
SHOTS_ENV = "DASHBOARD_SCREENSHOTS"  # keep the screenshots there (e.g. docs/) instead of a tmp dir
SERVE_STATUSES = {"RUNNING", "DEPLOYING", "DEPLOY_FAILED", "UNHEALTHY", "NOT_STARTED"}


@dataclass
class Stand:
    daemon: Daemon
    remote: GitRemote
    instance: str
    shots: Path
    page: Any
    errors: list[str] = field(default_factory=list)
    commits: dict[str, str] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        return self.daemon.status()

    def shot(self, name: str, page: Any = None) -> Path:
        path = self.shots / f"dashboard-{name}.png"
        (page or self.page).screenshot(path=str(path), full_page=True)
        return path

    def replica_names(self) -> set[str]:
        engine = DockerEngine(instance=self.instance, default_image=BASE_IMAGE)
        try:
            return {r.name for r in engine.observe() if r.state.value == "RUNNING"}
        finally:
            engine.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def stand(
    tmp_path_factory: pytest.TempPathFactory, docker_client: Any, browser: Any
) -> Iterator[Stand]:
    tmp = tmp_path_factory.mktemp("dashboard")
    tree = tmp / "fruit"
    shutil.copytree(EXAMPLES, tree, ignore=shutil.ignore_patterns(".git", "*.md", ".github"))
    config = tree / "serve_config.yaml"
    config.write_text(config.read_text().replace("port: 8000", f"port: {free_port()}"))
    remote = GitRemote.create(tmp / "git", files_from=tree)
    token_file = tmp / "token"
    token_file.write_text(TOKEN)
    instance, port = new_instance_name(), free_port()
    args = [
        "--repo",
        remote.url,
        "--poll-interval",
        "1",
        "--state-dir",
        str(tmp / "state"),
        "--listen",
        f"127.0.0.1:{port}",
        "--instance",
        instance,
        "--default-image",
        BASE_IMAGE,
        "--api-token-file",
        str(token_file),
    ]
    shots = Path(os.environ.get(SHOTS_ENV) or tmp / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    daemon = Daemon(args, port, {}, tmp / "daemon.log").start()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    s = Stand(daemon, remote, instance, shots, page)
    page.on("pageerror", lambda exc: s.errors.append(str(exc)))
    s.commits["first"] = git(remote.work, "rev-parse", "HEAD")
    try:
        yield s
    finally:
        context.close()
        daemon.kill()
        remove_owned(docker_client, instance)


def _app_status(page: Any) -> str:
    return str(page.locator("article.app h3 .chip").first.inner_text())


def test_the_dashboard_shows_the_running_fruit_stand(
    stand: Stand, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(f"\ndashboard screenshots: {stand.shots}")
    first = stand.commits["first"]
    wait_for(
        lambda: stand.status()["app_status"]["status"] == "RUNNING",
        timeout=120,
        what="the fruit stand RUNNING",
    )
    page = stand.page
    page.goto(stand.daemon.url + "/")
    page.evaluate("window.__notReloaded = true")
    wait_for(
        lambda: _app_status(page) == "RUNNING" and page.locator("tr.replica").count() == 5,
        timeout=30,
        what="the page showing five running replicas",
    )
    names = page.locator("tr.deployment th").all_inner_texts()
    assert sorted(names) == ["FruitMarket", "MangoStand", "OrangeStand", "PearStand"]
    replicas = set(page.locator("tr.replica td:first-child").all_inner_texts())
    assert replicas == stand.replica_names()
    applied = page.locator('li.entry[data-event="applied"]')
    assert applied.count() == 1 and first[:12] in applied.inner_text()
    assert "initial commit" in applied.inner_text() and "by test" in applied.inner_text()
    assert page.locator("#conn").inner_text() == "live"
    stand.shot("running")
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        phone.goto(stand.daemon.url + "/")
        phone.wait_for_selector("tr.replica")
        # readable on a phone: no sideways scrolling
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        stand.shot("phone", phone)
    finally:
        phone.close()


def test_a_refused_commit_appears_with_its_error(stand: Stand) -> None:
    stand.remote.edit("serve_config.yaml", "num_replicas: 2", "num_replica: 2")
    bad = stand.commits["bad"] = stand.remote.commit_all("FruitMarket: typo in num_replicas")
    page = stand.page
    refused = page.locator('li.entry[data-event="invalid"]')
    refused.wait_for(timeout=30_000)
    text = refused.inner_text()
    assert bad[:12] in text and "typo in num_replicas" in text
    assert "serve_config.yaml:31:5" in refused.locator("ul.errors code").inner_text()
    assert "did you mean 'num_replicas'" in text
    wait_for(lambda: _app_status(page) == "DEPLOY_FAILED", timeout=30, what="DEPLOY_FAILED")
    assert page.evaluate("window.__notReloaded") is True
    stand.shot("refused")


def test_pin_and_unpin_by_clicking(stand: Stand) -> None:
    page, first = stand.page, stand.commits["first"]
    pin_button = page.locator('li.entry[data-event="applied"] button[data-action="pin"]')
    pin_button.click()  # no token yet: the page asks for it, nothing is sent
    assert "token" in page.locator("#notice").inner_text().lower()
    assert stand.status()["pinned_commit"] is None
    page.fill("#token", TOKEN)
    page.click('#token-form button[type="submit"]')
    assert page.locator("#token-state").inner_text() == "token set for this tab"
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("sessionStorage.length") == 1

    page.locator('li.entry[data-event="applied"] button[data-action="pin"]').click()
    banner = page.locator("#pin-banner")
    banner.wait_for(timeout=30_000)
    assert first[:12] in banner.inner_text() and "waiting behind the pin" in banner.inner_text()
    status = stand.status()
    assert status["pinned_commit"] == first and status["waiting_behind_pin"] is True
    assert status["app_status"]["status"] == "RUNNING"  # the refused head waits behind the pin
    wait_for(lambda: _app_status(page) == "RUNNING", timeout=30, what="RUNNING while pinned")
    assert "pinned commit" in page.locator("#notice").inner_text()
    stand.shot("pinned")

    page.locator('button[data-action="unpin"]').click()
    banner.wait_for(state="detached", timeout=30_000)
    page.locator('li.entry[data-event="unpinned"]').wait_for(timeout=30_000)
    assert stand.status()["pinned_commit"] is None
    wait_for(
        lambda: _app_status(page) == "DEPLOY_FAILED",
        timeout=30,
        what="the refused head shown again after unpin",
    )
    assert page.evaluate("window.__notReloaded") is True


def _page_state(page: Any) -> dict[str, Any]:
    return dict(
        page.evaluate(
            """() => ({
              app: document.querySelector("article.app h3 .chip")?.textContent,
              deployments: [...document.querySelectorAll("tr.deployment td[data-label=status]")]
                .map(e => e.textContent),
              replicas: [...document.querySelectorAll("tr.replica td:first-child")]
                .map(e => e.textContent),
              old: document.querySelectorAll("tr.replica .old").length,
            })"""
        )
    )


def test_the_page_stays_correct_while_replicas_roll(stand: Stand) -> None:
    page = stand.page
    stand.remote.edit("serve_config.yaml", "num_replica: 2", "num_replicas: 2")
    stand.remote.edit("fruit.py", "return -1", "return 0")
    fixed = stand.remote.commit_all("unknown fruit is free; the typo fixed")
    seen: list[dict[str, Any]] = []
    wrong: list[dict[str, Any]] = []

    def done() -> bool:
        state = _page_state(page)
        if not seen or state != seen[-1]:
            seen.append(state)
        # At every moment: Serve's statuses, one row per replica, the four deployments. (Checked
        # here and asserted after: wait_for takes a probe's exception for "not yet".)
        if (
            state["app"] not in SERVE_STATUSES
            or len(state["replicas"]) != len(set(state["replicas"]))
            or len(state["deployments"]) != 4
        ):
            wrong.append(state)
        if state["old"] and not (stand.shots / "dashboard-rolling.png").exists():
            stand.shot("rolling")
        s = stand.status()
        at_fixed = s["applied_commit"] == fixed and s["app_status"]["status"] == "RUNNING"
        shown = state["app"] == "RUNNING" and state["old"] == 0 and len(state["replicas"]) == 5
        return bool(at_fixed and shown)

    try:
        wait_for(done, timeout=180, interval=0.3, what="the rollout shown to its end")
    finally:
        print("page states seen during the rollout:", *seen[-8:], sep="\n  ")
    assert wrong == [], wrong
    assert any(s["old"] or s["app"] == "DEPLOYING" for s in seen), "the roll was never shown"
    assert set(_page_state(page)["replicas"]) == stand.replica_names()
    assert page.evaluate("window.__notReloaded") is True
    assert stand.errors == [], stand.errors
    assert requests.get(stand.daemon.url + "/dashboard.json", timeout=10).status_code == 200
