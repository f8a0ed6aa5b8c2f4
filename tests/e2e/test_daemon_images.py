"""`reconciler run` with runtime_env.pip (issue 15): the package index given by
RECONCILER_PIP_INDEX_URL (a local one the test serves), the images built in the daemon's
background preparation, a package change rolled out, an unresolvable requirement refused at its
line while the running version keeps serving, and the images of an older commit removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.model import ReplicaState
from reconciler.runtime import labels
from reconciler.runtime.docker_engine import DockerEngine
from tests.conftest import BASE_IMAGE
from tests.packaging_support import simple_index
from tests.support import Daemon, GitRemote, free_port, wait_for

pytestmark = pytest.mark.docker

APP = """\
import tinypkg
from ray import serve


@serve.deployment
class Pkg:
    def value(self):
        return tinypkg.VALUE


app = Pkg.bind()
"""
CONFIG = """\
import_path: pkgapp:app
host: 127.0.0.1
port: {port}
runtime_env:
  pip: [tinypkg=={version}]
deployments:
  - name: Pkg
    health_check_period_s: 1
    graceful_shutdown_wait_loop_s: 0.1
    graceful_shutdown_timeout_s: 1
    ray_actor_options:
      num_cpus: 0.1
"""


def test_the_daemon_installs_rolls_refuses_and_collects(
    tmp_path: Path, instance_name: str, docker_client: Any
) -> None:
    versions = [(v, f"VALUE = {v!r}\n") for v in ("1.0", "2.0")]
    with simple_index(tmp_path / "index", {"tinypkg": versions}) as index:
        remote = GitRemote.create(tmp_path / "git")
        port = free_port()
        remote.write("pkgapp.py", APP)
        remote.write("serve_config.yaml", CONFIG.format(port=port, version="1.0"))
        first = remote.commit_all("tinypkg 1.0")
        api = free_port()
        args = ["--repo", remote.url, "--poll-interval", "1", "--state-dir",
                str(tmp_path / "state"), "--listen", f"127.0.0.1:{api}", "--instance",
                instance_name, "--default-image", BASE_IMAGE, "--keep-images", "1"]  # fmt: skip
        env = {"RECONCILER_PIP_INDEX_URL": index}
        daemon = Daemon(args, api, env, tmp_path / "daemon.log").start()
        engine = DockerEngine(instance=instance_name, default_image=BASE_IMAGE)
        try:
            wait_for(lambda: _running_at(daemon, first), timeout=120, what="1.0 RUNNING")
            assert _values(engine) == {"1.0"}
            log = daemon.log_path.read_text()
            assert "Successfully installed tinypkg-1.0" in log  # pip's progress, logged
            images_of_first = _images(docker_client, instance_name)
            assert len(images_of_first) == 2  # the packages image and the code on top

            remote.write("serve_config.yaml", CONFIG.format(port=port, version="2.0"))
            second = remote.commit_all("tinypkg 2.0")
            wait_for(
                lambda: _running_at(daemon, second) and _values(engine) == {"2.0"},
                timeout=120,
                what="2.0 rolled out",
            )

            remote.write("serve_config.yaml", CONFIG.format(port=port, version="9.9"))
            bad = remote.commit_all("no such version")
            status = wait_for(
                lambda: (s := daemon.status())["attempted_commit"] == bad and s,
                timeout=60,
                what="the unresolvable commit judged",
            )
            assert status["app_status"]["status"] == "DEPLOY_FAILED"
            message = status["app_status"]["message"]
            assert "serve_config.yaml:5:9: cannot install 'tinypkg==9.9'" in message
            assert status["applied_commit"] == second
            assert _values(engine) == {"2.0"}

            # --keep-images 1: once no container runs 1.0, its images go at the next apply.
            wait_for(
                lambda: all(r.state == ReplicaState.RUNNING for r in engine.observe()),
                timeout=30,
                what="the 1.0 replicas gone",
            )
            remote.write("serve_config.yaml", CONFIG.format(port=port, version="2.0") + "\n")
            fourth = remote.commit_all("2.0 again")
            wait_for(lambda: _running_at(daemon, fourth), timeout=60, what="back to 2.0")
            wait_for(
                lambda: not (_images(docker_client, instance_name) & images_of_first),
                timeout=30,
                what="1.0's images removed",
            )
            assert len(_images(docker_client, instance_name)) == 2  # 2.0's stay
        finally:
            daemon.kill()
            engine.close()


def _running_at(daemon: Daemon, commit: str) -> bool:
    status = daemon.status()
    return status["app_status"]["status"] == "RUNNING" and status["applied_commit"] == commit


def _values(engine: DockerEngine) -> set[str]:
    out = set()
    for r in engine.observe():
        if r.state == ReplicaState.RUNNING:
            url = f"{r.control_url}/-/call/{r.app}/{r.deployment}/value"
            out.add(
                requests.post(url, json={"args": [], "kwargs": {}}, timeout=10).json()["result"]
            )
    return out


def _images(client: Any, owner: str) -> set[str]:
    found = client.api.images(filters={"label": f"{labels.OWNER}={owner}"})
    return {t for image in found for t in image.get("RepoTags") or ()}
