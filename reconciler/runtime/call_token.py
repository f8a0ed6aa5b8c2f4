"""The instance's call token on one Docker host: what admits a pickled handle call that reaches
a replica from its network's gateway.

A replica takes pickles only from inside its network (serve_replica/calls.py): a connection from
the gateway is the host, a published control port any local user can reach. The router of an
ingress in the host's network (runtime/ingress_network.py) connects from the gateway too, so
there every replica gets this token in a file only its user reads (secret_env.py) and sends it
on its own handle calls. It is kept in the cache directory; a cache made anew while replicas run
takes theirs, so replicas started before and after keep calling each other.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler import naming
from reconciler.errors import EngineError
from reconciler.runtime import labels, secret_env
from reconciler.runtime.remote_code import default_cache_dir
from reconciler.runtime.seam import seam

Api = Callable[[], Any]  # the docker SDK's low-level client, connected on first use


def call_token_path(instance: str, cache_dir: Path | None = None) -> Path:
    """Where an instance's call token is kept."""
    return (cache_dir or default_cache_dir()) / f"call-token-{naming.clean(instance)}"


class CallToken:
    """Made or adopted on first use (an engine that only lists or removes makes no file)."""

    def __init__(self, api: Api, *, instance: str, path: Path, needed: Callable[[], bool]) -> None:
        self._api, self._instance, self.path, self._needed = api, instance, path, needed
        self._lock = threading.Lock()
        self._token = ""

    def value(self) -> str:
        """The token replicas get ("" where none is needed: the router is inside the network)."""
        if not self._needed():
            return ""
        with self._lock:
            if not self._token:
                self._token = secret_env.load_token(self.path, self._held_by_replicas)
            return self._token

    def remove(self) -> None:
        """Everything of the instance is gone: so goes the token (a later start makes one)."""
        with self._lock:
            self._token = ""
            self.path.unlink(missing_ok=True)

    def _held_by_replicas(self) -> str:
        """The token running replicas of this instance hold ("" if none does)."""
        owner, role = f"{labels.OWNER}={self._instance}", f"{labels.ROLE}=replica"
        made_for_it = f"{labels.ROUTER}=host"  # replicas for a bridge's router hold none
        with seam("list replicas"):
            entries = self._api().containers(filters={"label": [owner, role, made_for_it]})
        for entry in entries[:3]:
            with contextlib.suppress(EngineError), seam("read a replica's call token"):
                stream, _ = self._api().get_archive(entry["Id"], secret_env.CALL_TOKEN_FILE)
                token = secret_env.token_from_tar(b"".join(stream))
                if token:
                    return token
        return ""
