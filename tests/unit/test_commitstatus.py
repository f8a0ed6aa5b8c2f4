"""Commit statuses: the API root derived from a clone URL, the state of each commit derived from
a snapshot, and the reporter against a behavioural model of GitHub's API (tests/github_model.py):
only changes are sent, in order, retried when the host fails, never with the token in a log."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from reconciler.commitstatus import CommitStatusReporter, api_url_for, wanted
from reconciler.model import (
    ApplicationStatus,
    ApplicationStatusInfo,
    CommitStatus,
    Snapshot,
)
from reconciler.settings import CommitStatusSettings
from tests.github_model import GitHubModel, github_model
from tests.support import wait_for

A, B = "a" * 40, "b" * 40
TOKEN = "ghp_" + "x" * 36
RUNNING = ApplicationStatusInfo("default", ApplicationStatus.RUNNING)


@pytest.mark.parametrize(
    ("url", "api"),
    [
        ("https://github.com/fruit/stand.git", "https://api.github.com/repos/fruit/stand"),
        ("https://github.com/fruit/stand", "https://api.github.com/repos/fruit/stand"),
        ("git@github.com:fruit/stand.git", "https://api.github.com/repos/fruit/stand"),
        ("ssh://git@github.com/fruit/stand.git", "https://api.github.com/repos/fruit/stand"),
        ("https://gitea.example/fruit/stand.git", "https://gitea.example/api/v1/repos/fruit/stand"),
        ("git@codeberg.org:fruit/stand.git", "https://codeberg.org/api/v1/repos/fruit/stand"),
        ("https://git.example/sub/fruit/stand", "https://git.example/sub/api/v1/repos/fruit/stand"),
        ("file:///srv/git/stand.git", None),
        ("/srv/git/stand.git", None),
        ("https://github.com/stand", None),
    ],
)
def test_api_url_from_the_clone_url(url: str, api: str | None) -> None:
    assert api_url_for(url) == api


def _snap(apps: tuple[ApplicationStatusInfo, ...] = (RUNNING,), **commits: object) -> Snapshot:
    return Snapshot(shape="single", applications=apps, commits=CommitStatus(**commits))  # type: ignore[arg-type]


def test_what_each_commit_should_say() -> None:
    assert wanted(_snap(applied=A, latest=A)) == {A: ("success", "Running")}
    deploying = (replace(RUNNING, status=ApplicationStatus.DEPLOYING),)
    assert wanted(_snap(deploying, applied=A, latest=A)) == {A: ("pending", "Deploying")}
    # a new head being prepared: pending; what runs says nothing meanwhile (the overlay)
    assert wanted(_snap(deploying, applied=A, latest=B, preparing=B)) == {
        B: ("pending", "Preparing")
    }
    error = "serve_config.yaml:31:5: unknown key 'num_replica' (did you mean 'num_replicas'?)"
    refused = _snap(
        (replace(RUNNING, status=ApplicationStatus.DEPLOY_FAILED),),
        applied=A,
        latest=B,
        attempted=B,
        outcome="invalid",
        errors=(error, "two"),
    )
    assert wanted(refused) == {B: ("failure", f"Refused: {error}")}
    behind = _snap(applied=A, latest=B, pinned=A)
    assert wanted(behind) == {
        B: ("pending", f"Waiting behind the pin at {A[:12]}"),
        A: ("success", "Running"),
    }
    failed = (
        replace(
            RUNNING,
            status=ApplicationStatus.DEPLOY_FAILED,
            message="The deployments ['D'] are UNHEALTHY.\nD: boom",
        ),
    )
    assert wanted(_snap(failed, applied=A, latest=A)) == {
        A: ("failure", "Deploy failed: The deployments ['D'] are UNHEALTHY.")
    }
    unhealthy = (replace(RUNNING, status=ApplicationStatus.UNHEALTHY),)
    assert wanted(_snap(unhealthy, applied=A, latest=A)) == {}  # it went live: left as it was


def test_descriptions_fit_in_140_characters() -> None:
    long_error = "serve_config.yaml:1:1: " + "x" * 500
    snap = _snap(applied=A, latest=B, attempted=B, outcome="invalid", errors=(long_error,))
    state, description = wanted(snap)[B]
    assert state == "failure" and len(description) == 140 and description.endswith("\u2026")


@pytest.fixture
def model() -> Iterator[GitHubModel]:
    with github_model(TOKEN) as m:
        yield m


def _reporter(model: GitHubModel, token: str = TOKEN, **kw: object) -> CommitStatusReporter:
    settings = CommitStatusSettings(model.api_url, token, "serve-reconciler/t", "http://dash/")
    reporter = CommitStatusReporter(settings, base_backoff_s=0.05, **kw)  # type: ignore[arg-type]
    reporter.start()
    return reporter


def test_changes_are_sent_once_each_in_order(model: GitHubModel) -> None:
    reporter = _reporter(model)
    try:
        deploying = (replace(RUNNING, status=ApplicationStatus.DEPLOYING),)
        for snap in (
            _snap(deploying, applied=A, latest=B, preparing=B),
            _snap(deploying, applied=A, latest=B, preparing=B),  # the same again: not re-sent
            _snap(deploying, applied=B, latest=B),
            _snap(deploying, applied=B, latest=B),
            _snap(applied=B, latest=B),
            _snap(applied=B, latest=B),
        ):
            reporter.observe(snap)
        assert reporter.flush(10)
    finally:
        reporter.close()
    assert model.states(B) == ["pending", "pending", "success"]
    assert model.descriptions(B) == ["Preparing", "Deploying", "Running"]
    first = model.statuses[B][0]
    assert first["context"] == "serve-reconciler/t" and first["target_url"] == "http://dash/"
    assert model.states(A) == []  # it said nothing while B was prepared


def test_a_failing_host_is_retried_with_backoff(model: GitHubModel) -> None:
    model.fail_next = 3
    reporter = _reporter(model)
    try:
        reporter.observe(_snap(applied=A, latest=A))
        wait_for(lambda: model.states(A) == ["success"], timeout=10, what="the retried status")
    finally:
        reporter.close()
    assert len([r for r in model.requests if r[0] == "POST"]) == 4


def test_a_refusal_is_not_retried_and_the_token_is_never_logged(
    model: GitHubModel, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "ghp_" + "w" * 36
    with caplog.at_level(logging.DEBUG, logger="reconciler.commitstatus"):
        reporter = _reporter(model, token=wrong)
        try:
            reporter.observe(_snap(applied=A, latest=A))
            assert reporter.flush(10)
        finally:
            reporter.close()
    assert model.states(A) == [] and len(model.requests) == 1
    assert "401" in caplog.text and "Bad credentials" in caplog.text
    assert wrong not in caplog.text and TOKEN not in caplog.text


def test_observe_never_waits_for_the_network(model: GitHubModel) -> None:
    model.fail_next = 1000  # the host keeps failing: the worker backs off
    reporter = _reporter(model, queue=4)
    try:
        started = time.perf_counter()
        for i in range(200):
            reporter.observe(_snap(applied=f"{i:040x}", latest=f"{i:040x}"))
        assert time.perf_counter() - started < 0.5
    finally:
        reporter.close(timeout_s=2)
