"""Deterministic Docker names for replicas, the ingress and the network, and the drain marker.

A name part that Docker would reject is cleaned and suffixed with a short hash of the original,
so two different application names never map to the same container name.
"""

from __future__ import annotations

import hashlib
import re

_INVALID = re.compile(r"[^a-zA-Z0-9_.-]+")
_DRAIN = re.compile(r"--drain-(\d+)$")
DRAIN_MARK = "--drain-"


def clean(part: str) -> str:
    """`part` if Docker accepts it inside a name, else a cleaned form plus a hash suffix."""
    cleaned = _INVALID.sub("-", part).strip("-.") or "x"
    if cleaned == part and DRAIN_MARK not in part:
        return part
    suffix = hashlib.sha256(part.encode("utf-8")).hexdigest()[:6]
    return f"{cleaned.replace(DRAIN_MARK, '-')}-{suffix}"


def replica_name(instance: str, app: str, deployment: str, index: int) -> str:
    return f"serve-{clean(instance)}-{clean(app)}-{clean(deployment)}-{index}"


def ingress_name(instance: str) -> str:
    return f"serve-{clean(instance)}-ingress"


def network_name(instance: str) -> str:
    return f"serve-{clean(instance)}"


def drain_name(name: str, deadline: float) -> str:
    return f"{name}{DRAIN_MARK}{int(deadline)}"


def drain_deadline(name: str) -> float | None:
    """The deadline a drained container's name carries, or None for a live one."""
    match = _DRAIN.search(name.lstrip("/"))
    return float(match.group(1)) if match else None
