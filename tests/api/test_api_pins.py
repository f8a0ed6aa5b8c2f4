"""Pin, unpin and rollback over HTTP against the live server and a behavioural model of the
daemon's pin side (api_support.FakePins): who may call them (the token, constant-time; off
without one; cross-site browser requests refused), and how each answer is told."""

from __future__ import annotations

import pytest
from api_support import API_TOKEN, COMMIT_A, COMMIT_B, INVALID_ERRORS, LiveApi, MakeApi

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_without_a_configured_token_the_changing_endpoints_are_off(make_api: MakeApi) -> None:
    live = make_api(api_token=None)
    for method, path in (("post", "/pin"), ("delete", "/pin"), ("post", "/rollback")):
        response = live.client.request(method, path, json={"commit": COMMIT_A}, headers=AUTH)
        assert response.status_code == 403, (method, path)
        assert "--api-token-file" in response.json()["error"]
    assert live.state.snapshot.commits.pinned is None
    # reads stay open
    assert live.client.get("/pin").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_TOKEN}"},
     {"Authorization": API_TOKEN}, {"Cookie": f"token={API_TOKEN}"}],
    ids=["none", "wrong", "basic", "no-scheme", "cookie"],
)  # fmt: skip
def test_401_without_the_token(api: LiveApi, headers: dict[str, str]) -> None:
    for method, path in (("post", "/pin"), ("delete", "/pin"), ("post", "/rollback")):
        response = api.client.request(method, path, json={"commit": COMMIT_A}, headers=headers)
        assert response.status_code == 401, (method, path, headers)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert API_TOKEN not in response.text
    assert api.state.snapshot.commits.pinned is None and api.state.pins.answers == []


def test_pin_then_unpin_with_the_token(api: LiveApi) -> None:
    response = api.client.post("/pin", json={"commit": COMMIT_A[:8]}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pinned" and response.json()["commit"] == COMMIT_A
    shown = api.client.get("/pin").json()
    assert shown["pinned_commit"] == COMMIT_A and shown["last_request"]["status"] == "pinned"
    assert api.client.get("/status").json()["pinned_commit"] == COMMIT_A

    response = api.client.delete("/pin", headers=AUTH)
    assert response.status_code == 200 and response.json()["status"] == "unpinned"
    assert api.client.get("/pin").json()["pinned_commit"] is None
    again = api.client.delete("/pin", headers=AUTH)
    assert again.status_code == 200 and again.json()["status"] == "not-pinned"


def test_an_invalid_commit_is_refused_with_its_errors(api: LiveApi) -> None:
    response = api.client.post("/pin", json={"commit": COMMIT_B}, headers=AUTH)
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "refused" and "was not pinned" in body["error"]
    assert body["errors"] == list(INVALID_ERRORS)
    assert api.state.snapshot.commits.pinned is None


def test_unknown_commit_rollback_and_bad_bodies(api: LiveApi) -> None:
    unknown = api.client.post("/pin", json={"commit": "deadbeef"}, headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["status"] == "unknown"
    back = api.client.post("/rollback", headers=AUTH)
    assert back.status_code == 200 and back.json()["commit"] == COMMIT_A
    api.state.pins.previous = None
    none = api.client.post("/rollback", headers=AUTH)
    assert none.status_code == 409 and none.json()["status"] == "no-previous"
    for bad in (
        b"not json",
        b"[1]",
        b'{"commit": 3}',
        b'{"commit": ""}',
        b'{"commit": "a", "reason": 1}',
    ):
        response = api.client.post(
            "/pin", data=bad, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, bad
    huge = api.client.post("/pin", data=b"x" * 20_000, headers=AUTH)
    assert huge.status_code == 413


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Referer": "http://evil.example/page"},
    ],
    ids=["origin", "null-origin", "sec-fetch-cross", "sec-fetch-same-site", "referer"],
)
def test_cross_site_browser_requests_are_refused_even_with_the_token(
    api: LiveApi, headers: dict[str, str]
) -> None:
    response = api.client.post("/pin", json={"commit": COMMIT_A}, headers={**AUTH, **headers})
    assert response.status_code == 403
    assert "cross-site" in response.json()["error"]
    assert api.state.snapshot.commits.pinned is None


def test_same_origin_browser_requests_pass(api: LiveApi) -> None:
    origin = api.url
    headers = {**AUTH, "Origin": origin, "Sec-Fetch-Site": "same-origin", "Referer": origin + "/"}
    response = api.client.post("/pin", json={"commit": COMMIT_A}, headers=headers)
    assert response.status_code == 200, response.text


def test_unsupported_method_lists_the_allowed_ones(api: LiveApi) -> None:
    response = api.client.request("put", "/pin", headers=AUTH)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST", "DELETE"}
