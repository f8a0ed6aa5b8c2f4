"""The conformance suite: Serve-style applications (apps/, each a file valid as real Ray Serve
code) deployed on the real engine, many at once: one multi-application config, one reconciler,
one HAProxy ingress per test module, answered over HTTP through the ingress."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conformance_support import App, Deployed, deploy

from tests.conftest import remove_owned


@pytest.fixture(scope="module")
def deployed_module(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, docker_client: Any
) -> Iterator[Deployed]:
    """Deploys the module's APPS (and FILES) once; every test of the module asks them."""
    apps: list[App] = request.module.APPS
    files: list[str] = request.module.FILES
    harness, instance, base = deploy(tmp_path_factory.mktemp("conformance"), apps, files)
    try:
        harness.converge(timeout=float(getattr(request.module, "CONVERGE_TIMEOUT", 300)))
        yield Deployed(base, harness)
    finally:
        harness.engine.remove_all()
        remove_owned(docker_client, instance)
