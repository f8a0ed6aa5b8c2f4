"""The webhook verifier as a pure function: every git host's signature, every kind of event, and a
property test that it never raises nor triggers without a valid signature, whatever the input."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.webhook import WebhookVerdict, signature_for, verify_and_parse

SECRET = "hunter2-but-longer"


def push(ref: str = "refs/heads/main", **more: Any) -> bytes:
    return json.dumps({"ref": ref, "after": "0" * 40, **more}).encode()


def github(body: bytes, secret: str = SECRET, event: str = "push") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={digest}"}


def verify(headers: dict[str, str], body: bytes, branch: str = "main") -> WebhookVerdict:
    return verify_and_parse(headers, body, secret=SECRET, branch=branch)


def test_github_push_to_our_branch_triggers() -> None:
    verdict = verify(github(push()), push())
    assert verdict == WebhookVerdict(202, "push to 'main': reconcile triggered", trigger=True)


def test_signature_for_is_githubs_hmac() -> None:
    expected = hmac.new(b"k", b"body", hashlib.sha256).hexdigest()
    assert signature_for(b"body", "k") == expected


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in github(push()).items()}
    assert verify(headers, push()).trigger
    shouting = {k.upper(): v for k, v in github(push()).items()}
    assert verify(shouting, push()).trigger


def test_uppercase_hex_digest_is_accepted() -> None:
    headers = github(push())
    headers["X-Hub-Signature-256"] = "sha256=" + headers["X-Hub-Signature-256"][7:].upper()
    assert verify(headers, push()).trigger


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing signature"),
        ({"X-GitHub-Event": "push"}, "missing signature"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "does not match"),
        ({"X-Hub-Signature-256": signature_for(push(), SECRET)}, "sha256=<hex digest>"),
        ({"X-Hub-Signature-256": "sha256=" + signature_for(push(), "other")}, "does not match"),
        ({"X-Hub-Signature-256": "sha256=é☃"}, "does not match"),
        ({"X-Gitea-Signature": signature_for(push(), "other")}, "X-Gitea-Signature does not"),
        ({"X-Gitlab-Token": SECRET + " "}, "X-Gitlab-Token does not match"),
        ({"X-Gitlab-Token": SECRET.upper()}, "X-Gitlab-Token does not match"),
    ],
)
def test_unsigned_or_wrongly_signed_is_401(headers: dict[str, str], reason: str) -> None:
    verdict = verify(headers, push())
    assert (verdict.status, verdict.trigger) == (401, False)
    assert reason in verdict.message
    assert SECRET not in verdict.message


def test_signature_of_another_body_is_401() -> None:
    assert verify(github(push()), push(extra="tampered")).status == 401


def test_a_valid_signature_in_a_later_header_does_not_excuse_a_wrong_one() -> None:
    headers = {"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-Gitlab-Token": SECRET}
    assert verify(headers, push()).status == 401


def test_empty_secret_refuses_everything() -> None:
    verdict = verify_and_parse({"X-Gitlab-Token": ""}, push(), secret="", branch="main")
    assert (verdict.status, verdict.trigger) == (401, False)


@pytest.mark.parametrize("header", ["X-Gitea-Signature", "X-Forgejo-Signature"])
def test_gitea_and_forgejo_signatures(header: str) -> None:
    event = "X-Gitea-Event" if "Gitea" in header else "X-Forgejo-Event"
    headers = {header: signature_for(push(), SECRET), event: "push"}
    assert verify(headers, push()).trigger


def test_gitlab_token_push_hook() -> None:
    headers = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"}
    assert verify(headers, push()).trigger


def test_gitlab_tag_push_is_ignored() -> None:
    headers = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Tag Push Hook"}
    verdict = verify(headers, push("refs/tags/v1"))
    assert (verdict.status, verdict.trigger) == (202, False)
    assert "ignored" in verdict.message


def test_ping_is_200_and_does_not_trigger() -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    verdict = verify(github(body, event="ping"), body)
    assert (verdict.status, verdict.trigger) == (200, False)


def test_push_to_another_branch_is_ignored_and_says_so() -> None:
    verdict = verify(github(push("refs/heads/dev")), push("refs/heads/dev"))
    assert verdict == WebhookVerdict(202, "push to 'dev' ignored: watching 'main'", trigger=False)


def test_branch_with_slashes_matches_exactly() -> None:
    body = push("refs/heads/release/1.0")
    assert verify(github(body), body, branch="release/1.0").trigger
    assert not verify(github(body), body, branch="1.0").trigger


def test_tag_push_is_ignored() -> None:
    body = push("refs/tags/main")
    verdict = verify(github(body), body)
    assert (verdict.status, verdict.trigger) == (202, False)


def test_other_events_are_ignored() -> None:
    body = json.dumps({"action": "opened", "ref": "refs/heads/main"}).encode()
    verdict = verify(github(body, event="pull_request"), body)
    assert (verdict.status, verdict.trigger) == (202, False)
    assert "'pull_request' ignored" in verdict.message


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"refs/heads/main"',
        b'{"ref": 5}',
        b'{"after": "x"}',
        b"\xff\xfe\x00",
        b"[" * 100_000,
        b'{"ref": 1' + b"0" * 5000 + b"}",
    ],
)
def test_signed_but_malformed_is_400(body: bytes) -> None:
    verdict = verify(github(body), body)
    assert (verdict.status, verdict.trigger) == (400, False)


def test_form_encoded_github_delivery() -> None:
    from urllib.parse import urlencode

    body = urlencode({"payload": push().decode()}).encode()
    headers = {**github(body), "Content-Type": "application/x-www-form-urlencoded"}
    assert verify(headers, body).trigger


def test_long_or_odd_branch_names_are_cut_and_escaped_in_messages() -> None:
    body = push("refs/heads/" + "x" * 5000 + "\n\u202e")
    verdict = verify(github(body), body)
    assert verdict.status == 202
    assert len(verdict.message) < 300
    assert "\n" not in verdict.message


# --- Property test: any input, no exception, no trigger without a valid signature -----------

_HEADER_NAMES = st.sampled_from(
    [
        "X-Hub-Signature-256",
        "x-hub-signature-256",
        "X-Gitea-Signature",
        "X-Forgejo-Signature",
        "X-Gitlab-Token",
        "X-GitHub-Event",
        "X-Gitea-Event",
        "X-Gitlab-Event",
        "Content-Type",
    ]
) | st.text(max_size=30)
_HEADER_VALUES = st.sampled_from(
    [
        "sha256=",
        "ping",
        "push",
        "Push Hook",
        "application/x-www-form-urlencoded",
        "",
    ]
) | st.text(max_size=80)
_MARK = "Zq9-secret-"  # secrets with this prefix are the ones checked for leaks
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_REFS = st.sampled_from(
    ["refs/heads/main", "refs/heads/dev", "refs/tags/v1", "main", ""]
) | st.text(max_size=40)
_BODIES = st.one_of(
    st.binary(max_size=600),
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda ref, extra: json.dumps({"ref": ref, "x": extra}).encode(), _REFS, _JSON),
)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[dict[str, str], bytes, str, str, bool]:
    """Random headers and body; about half signed correctly so the parser behind it is reached."""
    marked = st.text("0123456789abcdef", min_size=8, max_size=20).map(lambda t: _MARK + t)
    secret = draw(st.text(min_size=1, max_size=30) | marked)
    body = draw(_BODIES)
    headers = draw(st.dictionaries(_HEADER_NAMES, _HEADER_VALUES, max_size=6))
    scheme = draw(st.sampled_from(["none", "github", "gitea", "forgejo", "gitlab"]))
    signed = scheme != "none"
    if scheme == "github":
        headers = {
            "X-Hub-Signature-256": "sha256=" + signature_for(body, secret),
            **{k: v for k, v in headers.items() if k.lower() != "x-hub-signature-256"},
        }
    elif scheme in ("gitea", "forgejo"):
        headers = {
            f"X-{scheme.capitalize()}-Signature": signature_for(body, secret),
            **{k: v for k, v in headers.items() if "signature" not in k.lower()},
        }
    elif scheme == "gitlab":
        headers = {
            "X-Gitlab-Token": secret,
            **{
                k: v
                for k, v in headers.items()
                if k.lower() not in ("x-gitlab-token", "x-hub-signature-256")
                and "signature" not in k.lower()
            },
        }
    return headers, body, secret, draw(st.text(max_size=20)), signed


def _check_any_request(request: tuple[dict[str, str], bytes, str, str, bool]) -> None:
    headers, body, secret, branch, signed = request
    verdict = verify_and_parse(headers, body, secret=secret, branch=branch)
    assert isinstance(verdict, WebhookVerdict)
    assert verdict.status in (200, 202, 400, 401)
    assert not verdict.trigger or verdict.status == 202
    if not signed and not any(
        k.lower() in ("x-gitlab-token", "x-hub-signature-256") or "signature" in k.lower()
        for k in headers
    ):
        assert verdict.status == 401
    if verdict.status == 401:
        assert not verdict.trigger
    if signed:
        assert verdict.status != 401, verdict.message
    # Only a secret that is in no input but the token header, and no fixed text, can be checked.
    if secret.startswith(_MARK) and secret not in body.decode(
        "utf-8", "replace"
    ) + branch + "".join(f"{k}{v}" for k, v in headers.items() if k.lower() != "x-gitlab-token"):
        assert secret not in verdict.message


# Issue 9 asks for at least 10,000 inputs in the default suite (about 15-30 s here).
@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_any_input_never_raises(request: tuple[dict[str, str], bytes, str, str, bool]) -> None:
    _check_any_request(request)


@pytest.mark.slow
@settings(max_examples=100_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_any_input_never_raises_long(request: tuple[dict[str, str], bytes, str, str, bool]) -> None:
    _check_any_request(request)
