"""The Swarm secrets and configs of one reconciler instance, and its control token.

The token is made once per instance (32 random bytes, URL-safe) and kept in a file of the
reconciler's own (mode 0600): replicas are given it as a Swarm secret, so it never appears in a
service's spec, its env or its labels, and their control endpoints answer only with it (their
ports are open on every node's network). A restarted reconciler reads the same file; one that
lost it makes a new token, and replicas given the old one are replaced.

Secrets and configs are immutable in Swarm, so each is named by its content: the same content is
the same object, made once. Secret names carry an HMAC of the content under the token, so a name
says nothing about the value. Objects no service uses any more are removed (`collect`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reconciler.errors import EngineError
from reconciler.runtime import containers, labels
from reconciler.runtime.seam import Conflict
from reconciler.runtime.swarm_specs import TOKEN_FILE, FileRef, object_name

Api = Callable[[], Any]
Seam = Callable[[str], AbstractContextManager[None]]
DIGEST = 12
log = logging.getLogger(__name__)


def load_token(path: Path) -> str:
    """The instance's control token from `path`, made (and written, 0600) when absent."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if token:
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def token_id(token: str) -> str:
    """Which token a service was given, in a form that does not reveal it."""
    return _mac(token, b"token-id")


def _mac(token: str, data: bytes) -> str:
    return hmac.new(token.encode("utf-8"), data, hashlib.sha256).hexdigest()[:DIGEST]


class SwarmObjects:
    """Makes (once) and collects this instance's secrets and configs on the swarm."""

    def __init__(self, api: Api, seam: Seam, *, instance: str, token: str) -> None:
        self._api, self._seam = api, seam
        self._instance, self._token = instance, token
        self._known: dict[str, str] = {}  # name -> ID, made or found by this process
        self._lock = threading.Lock()

    def token_ref(self) -> FileRef:
        return self.secret("token", self._token.encode("utf-8"), TOKEN_FILE)

    def secret(self, kind: str, data: bytes, path: str) -> FileRef:
        name = object_name(self._instance, kind, _mac(self._token, data))
        return FileRef(self._ensure("secret", name, data), name, path, 0o400)

    def config(self, kind: str, data: bytes, path: str, digest: str | None = None) -> FileRef:
        """A config named by `digest` (what its content was made from), or by its content."""
        name = object_name(
            self._instance, kind, digest or hashlib.sha256(data).hexdigest()[:DIGEST]
        )
        return FileRef(self._ensure("config", name, data), name, path, 0o444)

    def _ensure(self, what: str, name: str, data: bytes) -> str:
        with self._lock:
            if name in self._known:
                return self._known[name]
        api = self._api()
        create = api.create_secret if what == "secret" else api.create_config
        try:
            with self._seam(f"create {what} {name}"):
                made = create(name=name, data=data, labels=containers.base_labels(
                    self._instance, what))  # fmt: skip
            found = str(made["ID"])
        except Conflict:  # made before (by an earlier process): same name, same content
            found = self._find(what, name)
        with self._lock:
            self._known[name] = found
        return found

    def _find(self, what: str, name: str) -> str:
        api = self._api()
        listing = api.secrets if what == "secret" else api.configs
        with self._seam(f"find {what} {name}"):
            matches = [o for o in listing(filters={"name": name}) if o["Spec"]["Name"] == name]
        if not matches:
            raise EngineError(f"{what} {name} exists and cannot be found")
        return str(matches[0]["ID"])

    def collect(self, used: Collection[str]) -> int:
        """Remove this instance's secrets and configs whose IDs `used` does not hold (what the
        services reference); how many went. One still in use by a task is left for later."""
        api, removed = self._api(), 0
        owner = {"label": [f"{labels.OWNER}={self._instance}"]}
        with self._seam("list secrets and configs"):
            found = [("secret", o) for o in api.secrets(filters=owner)]
            found += [("config", o) for o in api.configs(filters=owner)]
        for what, obj in found:
            if obj["ID"] in used:
                continue
            remove = api.remove_secret if what == "secret" else api.remove_config
            with contextlib.suppress(EngineError), self._seam(f"remove {what}"):
                remove(obj["ID"])
                removed += 1
            with self._lock:
                self._known.pop(obj["Spec"]["Name"], None)
        return removed


def referenced(services: Collection[dict[str, Any]]) -> set[str]:
    """The IDs of the secrets and configs these services' task templates name."""
    ids: set[str] = set()
    for service in services:
        spec = ((service.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
        ids |= {s["SecretID"] for s in spec.get("Secrets") or ()}
        ids |= {c["ConfigID"] for c in spec.get("Configs") or ()}
    return ids
