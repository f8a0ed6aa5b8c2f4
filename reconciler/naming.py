"""Deterministic Docker names for replicas, the ingress and the network, and the drain marker.
Pure: the runtime names what it creates with it, and the config loader refuses two deployments
whose replicas it would name alike.

A name part that Docker would reject, or that holds `--` (the drain marker's start), is cleaned
and suffixed with a short hash of the original: `serve-i-cache--drain-0` would otherwise read as a
drained container. Parts are joined with `-`, which they may contain, so app `a-b` with deployment
`c` and app `a` with `b-c` would share names (`replica_stem`); the config loader refuses that.
The instance's name is in the ingress's DNS name, which must fit one 63-character label.
"""

from __future__ import annotations

import hashlib
import math
import re

_INVALID = re.compile(r"[^a-zA-Z0-9_.-]+")
_DASHES = re.compile(r"--+")
_DRAIN = re.compile(r"--drain-(\d+)$")
DRAIN_MARK = "--drain-"
DNS_LABEL_MAX = 63


def clean(part: str) -> str:
    """`part` if Docker accepts it inside a name and it holds no `--`, else a cleaned form (no
    `--`, no leading or trailing `-` or `.`) plus a hash suffix."""
    cleaned = _DASHES.sub("-", _INVALID.sub("-", part)).strip("-.") or "x"
    if cleaned == part:
        return part
    suffix = hashlib.sha256(part.encode("utf-8")).hexdigest()[:6]
    return f"{cleaned}-{suffix}"


def replica_stem(app: str, deployment: str) -> str:
    """The part of a replica's name that says whose it is; two deployments must not share it."""
    return f"{clean(app)}-{clean(deployment)}"


def replica_name(instance: str, app: str, deployment: str, index: int) -> str:
    return f"serve-{clean(instance)}-{replica_stem(app, deployment)}-{index}"


def ingress_name(instance: str) -> str:
    """Also the host name replicas call the router by: `instance_problem` keeps it a DNS label."""
    return f"serve-{clean(instance)}-ingress"


def instance_problem(instance: str) -> str | None:
    """Why `instance` cannot name a reconciler instance that creates containers, or None."""
    if not instance:
        return "it is empty"
    if "--" in instance:  # cleaned differently by earlier versions: its network would change
        return "it holds '--'"
    if len(ingress_name(instance)) > DNS_LABEL_MAX:
        longest = DNS_LABEL_MAX - len("serve--ingress")
        return (
            f"the ingress's host name {ingress_name(instance)} would be longer than a DNS label "
            f"({DNS_LABEL_MAX}); up to {longest} letters, digits, '_', '.' and '-' fit"
        )
    return None


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


_SERVER_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
SERVER_ID_DIGITS = 12


def server_name(container_name: str, container_id: str) -> str:
    """A replica's server name in its HAProxy backend: its container name without a drain
    marker, in HAProxy's alphabet, then `_` and the first 12 digits of its container id. A
    drained container keeps its server across its rename, and a replacement of the same name is
    another server."""
    base = _SERVER_UNSAFE.sub("_", _DRAIN.sub("", container_name.lstrip("/"))) or "replica"
    return f"{base}_{container_id[:SERVER_ID_DIGITS]}"


def server_replica_id(server: str) -> str | None:
    """The container id prefix a server name ends with (see `server_name`), or None."""
    head, sep, digits = server.rpartition("_")
    return digits if sep and head and len(digits) == SERVER_ID_DIGITS else None
