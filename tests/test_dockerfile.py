"""The reconciler's own image: scripts/build-reconciler-image builds it on this machine with no
registry, and inside it, as the non-root user, `reconciler --version` and `reconciler validate`
work on the example repository (and a broken config fails with file:line:col)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import __version__
from tests.support import EXAMPLES, ROOT

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def image(docker_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    tag = f"serve-reconciler/reconciler:test-{uuid.uuid4().hex[:8]}"
    try:
        built = subprocess.run(
            [str(ROOT / "scripts" / "build-reconciler-image"), tag],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert built.returncode == 0, built.stdout + built.stderr
        assert f"{tag} ready" in built.stdout
        yield tag
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True, timeout=60)


def docker_run(
    image: str, *args: str, mount: Path | None = None
) -> subprocess.CompletedProcess[str]:
    volume = ["-v", f"{mount}:/repo:ro"] if mount else []
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", *volume, image, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_version_as_the_non_root_user(image: str) -> None:
    result = docker_run(image, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"reconciler {__version__}"
    user = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "id", image, "-u"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert user.stdout.strip() == "10001"


def test_validate_the_example_repository(image: str) -> None:
    result = docker_run(image, "validate", "/repo", mount=EXAMPLES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid: /repo/multi_app_config.yaml, /repo/serve_config.yaml" in result.stdout


def test_validate_a_broken_config(image: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    config = repo / "serve_config.yaml"
    config.write_text(config.read_text().replace("num_replicas: 2", "num_replica: 2"))
    (repo / "multi_app_config.yaml").unlink()
    repo.chmod(0o755)  # the container's user 10001 reads the mount
    result = docker_run(image, "validate", "--format", "github", "/repo", mount=repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "::error file=/repo/serve_config.yaml,line=31,col=5::unknown key 'num_replica'" in (
        result.stdout
    )
