"""Verify and read a git host's push webhook: pure functions over headers and the raw body.

The payload is only a hint to poll now (Argo CD's rule): after the signature holds, nothing in
it is used except the branch name. Signatures are checked in constant time over the raw body:
GitHub `X-Hub-Signature-256: sha256=<hex>`, Gitea/Forgejo `X-Gitea-Signature` /
`X-Forgejo-Signature: <hex>` (HMAC-SHA256 of the body), GitLab `X-Gitlab-Token: <secret>`.

`verify_and_parse` never raises, whatever the input: it is fuzzed with random headers and bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

_EVENT_HEADERS = ("x-github-event", "x-gitea-event", "x-forgejo-event", "x-gitlab-event")
_PUSH_EVENTS = frozenset({"push", "push hook"})
_HEX_SIGNATURES = ("x-gitea-signature", "x-forgejo-signature")
_MAX_SHOWN = 100  # longest branch or event name echoed back in a message


@dataclass(frozen=True)
class WebhookVerdict:
    """What to answer: the HTTP status, a message for the sender, and whether to poll now."""

    status: int
    message: str
    trigger: bool


def verify_and_parse(
    headers: Mapping[str, str], body: bytes, *, secret: str, branch: str
) -> WebhookVerdict:
    """Check the signature, then decide from the event and the pushed ref whether to poll now."""
    lowered = {str(key).lower(): str(value) for key, value in headers.items()}
    refusal = _check_signature(lowered, body, secret)
    if refusal is not None:
        return WebhookVerdict(401, refusal, trigger=False)
    event = _event(lowered)
    if event == "ping":
        return WebhookVerdict(
            200, "pong: the webhook is configured and its signature is valid", trigger=False
        )
    if event is not None and event not in _PUSH_EVENTS:
        return WebhookVerdict(
            202,
            f"event {_shown(event)} ignored: only push events trigger a reconcile",
            trigger=False,
        )
    return _verdict_for_ref(_read_ref(lowered, body), branch)


def signature_for(body: bytes, secret: str) -> str:
    """The hex HMAC-SHA256 of `body` under `secret` (what GitHub and Gitea send)."""
    return hmac.new(_utf8(secret), body, hashlib.sha256).hexdigest()


def _check_signature(headers: Mapping[str, str], body: bytes, secret: str) -> str | None:
    """None when the request is signed with `secret`, else why it is refused (never the secret)."""
    if not secret:
        return "the webhook secret is empty; every request is refused"
    if "x-hub-signature-256" in headers:
        given = headers["x-hub-signature-256"].strip()
        if not given.startswith("sha256="):
            return "X-Hub-Signature-256 must have the form sha256=<hex digest>"
        given = given[len("sha256=") :].lower()
        return _compare(given, signature_for(body, secret), "X-Hub-Signature-256")
    for name in _HEX_SIGNATURES:
        if name in headers:
            given = headers[name].strip().lower()
            return _compare(given, signature_for(body, secret), _title(name))
    if "x-gitlab-token" in headers:
        return _compare(headers["x-gitlab-token"], secret, "X-Gitlab-Token")
    return (
        "missing signature: send X-Hub-Signature-256, X-Gitea-Signature, "
        "X-Forgejo-Signature or X-Gitlab-Token"
    )


def _compare(given: str, expected: str, header: str) -> str | None:
    # compare_digest on bytes: on str it raises for non-ASCII input, which an attacker controls.
    if hmac.compare_digest(_utf8(given), _utf8(expected)):
        return None
    return f"{header} does not match the configured secret"


def _event(headers: Mapping[str, str]) -> str | None:
    for name in _EVENT_HEADERS:
        if name in headers:
            return headers[name].strip().lower()
    return None


def _read_ref(headers: Mapping[str, str], body: bytes) -> str | None:
    """The pushed ref, or None when the body is not a JSON object with a string `ref`."""
    payload = _decode(headers.get("content-type", ""), body)
    if not isinstance(payload, dict):
        return None
    ref = payload.get("ref")
    return ref if isinstance(ref, str) else None


def _decode(content_type: str, body: bytes) -> Any:
    try:
        raw: str | bytes = body
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            # GitHub's form delivery: the JSON sits in the `payload` field.
            fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=100)
            raw = fields.get("payload", [""])[0]
        return json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, too many fields, deep nesting
        return None


def _verdict_for_ref(ref: str | None, branch: str) -> WebhookVerdict:
    if ref is None:
        return WebhookVerdict(
            400, "the body is not a JSON push event with a string 'ref'", trigger=False
        )
    if not ref.startswith("refs/heads/"):
        return WebhookVerdict(
            202,
            f"push to {_shown(ref)} ignored: only branches are watched (watching {_shown(branch)})",
            trigger=False,
        )
    pushed = ref[len("refs/heads/") :]
    if pushed != branch:
        return WebhookVerdict(
            202, f"push to {_shown(pushed)} ignored: watching {_shown(branch)}", trigger=False
        )
    return WebhookVerdict(202, f"push to {_shown(branch)}: reconcile triggered", trigger=True)


def _shown(text: str) -> str:
    """A name from the payload, quoted and cut short, safe to echo in a message."""
    cut = text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
    return "'" + cut.encode("ascii", "backslashreplace").decode("ascii") + "'"


def _title(header: str) -> str:
    return "-".join(part.capitalize() for part in header.split("-"))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
