"""Shared fixtures. Tests that need Docker use the real engine and the base image that
`scripts/build-image` makes; every container and network they create carries the owner label of
a per-test instance name and is removed at teardown."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.swarm.fixtures"]  # the session's swarm lab (tests/swarm, tests/e2e)

BASE_IMAGE = os.environ.get("RECONCILER_TEST_IMAGE", "serve-reconciler/python:bookworm")


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    import docker

    client = docker.from_env()
    try:
        client.ping()
    except Exception as exc:  # pragma: no cover - environment problem, say so loudly
        pytest.fail(f"no Docker engine reachable ({exc}); run .ci/run or start dockerd")
    try:
        client.images.get(BASE_IMAGE)
    except Exception:
        pytest.fail(f"base image {BASE_IMAGE} missing; run scripts/build-image")
    yield client
    leaked = _remove_leftovers(client)
    if leaked:  # a safety net, and a report: every test should have removed its own
        print(f"\nconftest: removed containers/networks left behind by tests: {leaked}")
    client.close()


TEST_OWNER = re.compile(r"^t[0-9a-f]{8}$|^t\d+readme$")
_ISSUED: set[str] = set()  # instance names this test session handed out


def new_instance_name() -> str:
    """A fresh test instance name (t + 8 hex digits), swept at session end if left behind."""
    name = f"t{uuid.uuid4().hex[:8]}"
    _ISSUED.add(name)
    return name


def _remove_leftovers(client) -> list[str]:  # type: ignore[no-untyped-def]
    """Containers and networks of instances this session named (t + 8 hex digits, the README
    test), and never those of another test run sharing the engine."""
    from reconciler.runtime import labels

    mine = _ISSUED | {f"t{os.getpid()}readme"}
    owners = set()
    for c in client.containers.list(all=True, filters={"label": labels.MANAGED}):
        owner = c.labels.get(labels.OWNER, "")
        if TEST_OWNER.match(owner) and owner in mine:
            owners.add(owner)
    for n in client.networks.list(filters={"label": labels.MANAGED}):
        owner = (n.attrs.get("Labels") or {}).get(labels.OWNER, "")
        if TEST_OWNER.match(owner) and owner in mine:
            owners.add(owner)
    for image in client.images.list(filters={"label": labels.MANAGED}):
        owner = (image.labels or {}).get(labels.OWNER, "")
        if TEST_OWNER.match(owner) and owner in mine:
            owners.add(owner)
    for owner in owners:
        remove_owned(client, owner)
    return sorted(owners)


@pytest.fixture
def instance_name(docker_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh reconciler instance name; everything owned by it is removed afterwards."""

    name = new_instance_name()
    yield name
    remove_owned(docker_client, name)


def remove_owned(client, owner: str) -> None:  # type: ignore[no-untyped-def]
    from reconciler.runtime import labels

    for c in client.containers.list(all=True, filters={"label": f"{labels.OWNER}={owner}"}):
        with contextlib.suppress(Exception):
            c.remove(force=True)
    for n in client.networks.list(filters={"label": f"{labels.OWNER}={owner}"}):
        with contextlib.suppress(Exception):
            n.remove()
    remove_owned_images(client, owner)


def remove_owned_images(client, owner: str) -> None:  # type: ignore[no-untyped-def]
    """The images an instance built (the engine's own GC with nothing to keep: it removes
    their intermediate layers too, never the base they were built FROM)."""
    from reconciler.runtime.docker_engine import DockerEngine

    engine = DockerEngine(instance=owner, default_image=BASE_IMAGE, docker_client=client)
    try:
        with contextlib.suppress(Exception):
            engine.remove_images()
    finally:
        engine.close()
