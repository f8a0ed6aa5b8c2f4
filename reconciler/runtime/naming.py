"""Deterministic Docker names for replicas, the ingress and the network, and the drain marker.

A name part that Docker would reject, or that holds `--` (the drain marker's start), is cleaned
and suffixed with a short hash of the original: `serve-i-cache--drain-0` would otherwise read as a
drained container. Parts are joined with `-`, which they may contain, so app `a-b` with deployment
`c` and app `a` with `b-c` would share names; the config loader refuses that pair.
"""

from __future__ import annotations

import hashlib
import math
import re

_INVALID = re.compile(r"[^a-zA-Z0-9_.-]+")
_DASHES = re.compile(r"--+")
_DRAIN = re.compile(r"--drain-(\d+)$")
DRAIN_MARK = "--drain-"


def clean(part: str) -> str:
    """`part` if Docker accepts it inside a name, else a cleaned form plus a hash suffix."""
    cleaned = _DASHES.sub("-", _INVALID.sub("-", part)).strip("-.") or "x"
    if cleaned == part:
        return part
    suffix = hashlib.sha256(part.encode("utf-8")).hexdigest()[:6]
    return f"{cleaned}-{suffix}"


def replica_name(instance: str, app: str, deployment: str, index: int) -> str:
    return f"serve-{clean(instance)}-{clean(app)}-{clean(deployment)}-{index}"


def ingress_name(instance: str) -> str:
    return f"serve-{clean(instance)}-ingress"


def network_name(instance: str) -> str:
    return f"serve-{clean(instance)}"


def drain_name(name: str, deadline: float) -> str:
    """The name a drained container takes; the deadline rounds up (whole seconds in the name),
    so a replica always gets at least its graceful_shutdown_timeout_s."""
    return f"{name}{DRAIN_MARK}{math.ceil(deadline)}"


def drain_deadline(name: str) -> float | None:
    """The deadline a drained container's name carries, or None for a live one."""
    match = _DRAIN.search(name.lstrip("/"))
    return float(match.group(1)) if match else None
