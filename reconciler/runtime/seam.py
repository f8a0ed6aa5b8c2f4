"""The one wrapper every Docker SDK call of the runtime goes through (both engines): an
unreachable engine becomes `EngineUnavailable`, a refused operation `EngineError` (`Missing` for
a 404, `Conflict` for a 409, `ImageMissing` for an unknown image), each saying what was tried;
the two container calls that treat "not there" as an answer, and the client connected on
first use."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import requests.exceptions

from reconciler.errors import EngineError, EngineUnavailable, ImageMissing


class Missing(EngineError):
    """The container, service or network is gone (404); callers that remove things ignore it."""


class Conflict(EngineError):
    """409: a name is taken, or the object is not in a state for this operation."""


@contextlib.contextmanager
def seam(action: str) -> Iterator[None]:
    try:
        yield
    except docker.errors.ImageNotFound as e:
        raise ImageMissing(f"{action}: image not found ({e.explanation or e})") from e
    except docker.errors.NotFound as e:
        raise Missing(f"{action}: {e.explanation or e}") from e
    except docker.errors.APIError as e:
        kind = Conflict if e.status_code == 409 else EngineError
        raise kind(f"{action}: {e.explanation or e}") from e
    except (requests.exceptions.RequestException, docker.errors.DockerException, OSError) as e:
        raise EngineUnavailable(
            f"{action}: the Docker engine is not reachable ({e}); is dockerd running, and does "
            "DOCKER_HOST name it? (`docker info` must work for this user)"
        ) from e


def inspect_or_none(api: Callable[[], Any], name: str) -> dict[str, Any] | None:
    """`docker inspect` of a container, None when there is none of that name or id."""
    try:
        with seam(f"inspect {name}"):
            return dict(api().inspect_container(name))
    except Missing:
        return None


def remove_quietly(api: Callable[[], Any], container_id: str) -> None:
    """Remove a container, running or not; one already gone (or going) is no error."""
    with contextlib.suppress(Missing, Conflict), seam("remove container"):
        api().remove_container(container_id, force=True)


class LazyApi:
    """The docker SDK's low-level API client: the one given, or one connected from the
    environment (DOCKER_HOST and friends) on the first call, once, from any thread."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if self._client is None:
                with seam("connect"):
                    self._client = docker.from_env()
            return self._client.api
