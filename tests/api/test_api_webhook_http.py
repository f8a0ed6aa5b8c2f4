"""POST /webhook over real HTTP: the trigger is called exactly for a signed push to our branch."""

from __future__ import annotations

import json
import logging

import pytest
import requests
from api_support import MAX_WEBHOOK_BYTES, SECRET, LiveApi, MakeApi

from reconciler.webhook import signature_for


def _push(ref: str = "refs/heads/main", pad: int = 0) -> bytes:
    return json.dumps({"ref": ref, "after": "f" * 40, "pad": "x" * pad}).encode()


def _github(body: bytes, event: str = "push", secret: str = SECRET) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "Content-Type": "application/json",
        "X-Hub-Signature-256": "sha256=" + signature_for(body, secret),
    }


def _metric(api: LiveApi, result: str) -> float:
    text = api.client.get("/metrics").text
    line = f'serve_reconciler_webhooks_total{{result="{result}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line))[len(line) :])


def test_github_signed_push_triggers_once(api: LiveApi) -> None:
    body = _push()
    response = api.client.post("/webhook", data=body, headers=_github(body))
    assert response.status_code == 202
    assert response.json()["status"] == "triggered"
    assert api.state.triggers == 1
    assert _metric(api, "triggered") == 1.0


def test_unsigned_push_is_401_and_does_not_trigger(api: LiveApi) -> None:
    response = api.client.post("/webhook", data=_push(), headers={"X-GitHub-Event": "push"})
    assert response.status_code == 401
    assert "missing signature" in response.json()["error"]
    assert api.state.triggers == 0


def test_wrongly_signed_push_is_401_logged_without_the_secret(
    api: LiveApi, caplog: pytest.LogCaptureFixture
) -> None:
    body = _push()
    with caplog.at_level(logging.WARNING, logger="reconciler.api.routes"):
        response = api.client.post("/webhook", data=body, headers=_github(body, secret="wrong"))
    assert response.status_code == 401
    assert SECRET not in response.text
    assert api.state.triggers == 0
    refused = [r.getMessage() for r in caplog.records if "webhook refused" in r.getMessage()]
    assert refused and "127.0.0.1" in refused[0]
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert _metric(api, "rejected") == 1.0


def test_oversized_body_is_413_before_verification(api: LiveApi) -> None:
    body = _push(pad=MAX_WEBHOOK_BYTES)
    response = api.client.post("/webhook", data=body, headers=_github(body))
    assert response.status_code == 413
    assert str(MAX_WEBHOOK_BYTES) in response.json()["error"]
    assert api.state.triggers == 0


def test_oversized_chunked_body_is_413(api: LiveApi) -> None:
    body = _push(pad=MAX_WEBHOOK_BYTES)
    chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
    response = api.client.post("/webhook", data=chunks, headers=_github(body))
    assert response.status_code == 413
    assert api.state.triggers == 0


def test_body_at_the_cap_is_read(api: LiveApi) -> None:
    filler = MAX_WEBHOOK_BYTES - len(_push())
    body = _push(pad=filler)
    assert len(body) == MAX_WEBHOOK_BYTES
    response = api.client.post("/webhook", data=body, headers=_github(body))
    assert response.status_code == 202
    assert api.state.triggers == 1


def test_huge_body_is_refused_by_the_server_itself(api: LiveApi) -> None:
    # Past waitress's own cap the server answers 413 before the app runs (plain text).
    body = b"x" * (8 << 20)
    response = requests.post(api.url + "/webhook", data=body, timeout=30)
    assert response.status_code == 413
    assert api.state.triggers == 0


def test_push_to_another_branch_is_ignored(api: LiveApi) -> None:
    body = _push("refs/heads/feature/x")
    response = api.client.post("/webhook", data=body, headers=_github(body))
    assert response.status_code == 202
    assert response.json() == {
        "status": "ignored",
        "message": "push to 'feature/x' ignored: watching 'main'",
    }
    assert api.state.triggers == 0


def test_ping_is_200(api: LiveApi) -> None:
    body = json.dumps({"zen": "Design for failure.", "hook_id": 7}).encode()
    response = api.client.post("/webhook", data=body, headers=_github(body, event="ping"))
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert api.state.triggers == 0


def test_signed_malformed_body_is_400(api: LiveApi) -> None:
    body = b"{not json"
    response = api.client.post("/webhook", data=body, headers=_github(body))
    assert response.status_code == 400
    assert api.state.triggers == 0


def test_gitea_signed_push_triggers(api: LiveApi) -> None:
    body = _push()
    headers = {"X-Gitea-Event": "push", "X-Gitea-Signature": signature_for(body, SECRET)}
    response = api.client.post("/webhook", data=body, headers=headers)
    assert (response.status_code, api.state.triggers) == (202, 1)


def test_gitea_wrong_signature_is_401(api: LiveApi) -> None:
    body = _push()
    headers = {"X-Gitea-Event": "push", "X-Gitea-Signature": signature_for(body, "nope")}
    response = api.client.post("/webhook", data=body, headers=headers)
    assert (response.status_code, api.state.triggers) == (401, 0)


@pytest.mark.parametrize(("token", "status", "triggers"), [(SECRET, 202, 1), ("guess", 401, 0)])
def test_gitlab_token(api: LiveApi, token: str, status: int, triggers: int) -> None:
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": token}
    response = api.client.post("/webhook", data=_push(), headers=headers)
    assert (response.status_code, api.state.triggers) == (status, triggers)


def test_every_push_triggers_again(api: LiveApi) -> None:
    body = _push()
    for _ in range(3):
        api.client.post("/webhook", data=body, headers=_github(body))
    other = _push("refs/heads/dev")
    api.client.post("/webhook", data=other, headers=_github(other))
    assert api.state.triggers == 3


def test_webhook_off_without_secret(make_api: MakeApi) -> None:
    live = make_api(webhook_secret=None)
    body = _push()
    response = live.client.post("/webhook", data=body, headers=_github(body))
    assert response.status_code == 404
    assert "not configured" in response.json()["error"]
    assert live.state.triggers == 0


def test_empty_secret_means_off(make_api: MakeApi) -> None:
    live = make_api(webhook_secret="")
    response = live.client.post("/webhook", data=b"{}", headers={"X-Gitlab-Token": ""})
    assert response.status_code == 404
    assert live.state.triggers == 0


def test_a_flood_of_refusals_is_logged_once(api: LiveApi, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="reconciler.api.routes"):
        for _ in range(20):
            response = api.client.post("/webhook", data=b"{}", headers={"X-Gitlab-Token": "x"})
            assert response.status_code == 401
    refused = [r for r in caplog.records if "webhook refused" in r.getMessage()]
    assert len(refused) == 1
    assert _metric(api, "rejected") == 20.0
