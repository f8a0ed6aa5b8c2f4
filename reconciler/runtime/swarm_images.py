"""Images on a swarm: what a replica runs must be pullable by every node. Each image built for a
deployment version (images.py, on the manager's engine) is tagged into the registry the user
names (`--registry HOST:PORT`), pushed from the manager, and given to Swarm pinned by digest
(`HOST:PORT/serve-reconciler/app:TAG@sha256:...`): the Engine API does not pin a service's image
itself, and a node seeded with `docker load` would otherwise resolve the tag on its own. The
ingress's image (the default image) is published the same way, once.

Without a registry nothing is pushed and images are named as they are: every node must already
have them (a one-node swarm, or images loaded on each node by hand).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from typing import Any

from reconciler.errors import EngineError, EngineUnavailable, ReconcilerError

Api = Callable[[], Any]
Seam = Callable[[str], AbstractContextManager[None]]
log = logging.getLogger(__name__)
_UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "dial tcp", "timeout")


def split_tag(ref: str) -> tuple[str, str]:
    """(repository, tag) of `repo[:tag]`; the tag defaults to latest. A registry port is not a
    tag (`host:5000/repo` has none)."""
    head, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return head, tag


def local_ref(pinned: str, registry: str | None) -> str:
    """The local tag a published reference was made from (for the image GC)."""
    ref = pinned.split("@", 1)[0]
    prefix = f"{registry}/" if registry else ""
    return ref[len(prefix) :] if prefix and ref.startswith(prefix) else ref


class RegistryImages:
    """Publishes local images to the registry, once each per process."""

    def __init__(self, api: Api, seam: Seam, registry: str | None) -> None:
        self._api, self._seam = api, seam
        self.registry = registry.rstrip("/") if registry else None
        self._published: dict[str, str] = {}  # local tag -> pinned reference
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.pushes = 0

    def publish(self, local: str, progress: Callable[[str], None] = log.info) -> str:
        """The pinned reference of `local` in the registry, pushed when this process has not."""
        if self.registry is None:
            return local
        with self._guard:
            lock = self._locks.setdefault(local, threading.Lock())
        with lock:
            known = self._published.get(local)
            if known is None:
                known = self._push(local, progress)
                self._published[local] = known
            return known

    def keep(self, refs: Collection[str]) -> set[str]:
        """The local tags of these published references."""
        return {local_ref(r, self.registry) for r in refs}

    def _push(self, local: str, progress: Callable[[str], None]) -> str:
        repository, tag = split_tag(local)
        target = f"{self.registry}/{repository}"
        api = self._api()
        with self._seam(f"tag {local} for the registry"):
            api.tag(local, target, tag)
        progress(f"pushing {target}:{tag}")
        digest = None
        with self._seam(f"push {target}:{tag}"):
            for event in api.push(target, tag, stream=True, decode=True):
                if event.get("error"):
                    raise _push_error(target, tag, str(event["error"]))
                digest = (event.get("aux") or {}).get("Digest") or digest
        if not digest:
            digest = self._digest(f"{target}:{tag}")
        self.pushes += 1
        return f"{target}:{tag}@{digest}"

    def _digest(self, ref: str) -> str:
        """The registry's digest of `ref` (what `docker service create` pins by)."""
        with self._seam(f"look up {ref} in the registry"):
            found = self._api().inspect_distribution(ref)
        digest = (found.get("Descriptor") or {}).get("digest")
        if not digest:
            raise EngineError(f"the registry gave no digest for {ref}")
        return str(digest)


def _push_error(target: str, tag: str, text: str) -> ReconcilerError:
    message = f"pushing {target}:{tag} failed: {text}"
    if any(word in text.lower() for word in _UNREACHABLE):
        return EngineUnavailable(
            f"{message} (is the registry up, and does the manager's engine trust it: "
            "insecure-registries for plain HTTP?)"
        )
    return EngineError(message)
