"""Fixtures of the daemon fault tests (helpers live in faults_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.faults_support import Rig, make_repo


@pytest.fixture
def rig(tmp_path: Path, instance_name: str, docker_client: Any) -> Iterator[Rig]:
    """A greeter repository and an instance; every daemon started on it is killed at the end
    (the instance_name fixture then removes the containers and the network)."""
    made = Rig(tmp_path, make_repo(tmp_path), instance_name, docker_client)
    yield made
    made.kill_all()
