"""Who gets in (issue 9): the API on loopback by default; replica and ingress containers
hardened (never privileged, no capabilities, no-new-privileges, a PID limit, no host path); an
image allow-list that refuses other images; secrets (git credentials, the webhook secret,
secret env vars) never in the log, /status, /config or /history, nor secret env values in
`docker inspect`, while replicas get their env."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.model import ReplicaState
from reconciler.runtime import labels
from reconciler.runtime.docker_engine import DockerEngine
from tests.conftest import BASE_IMAGE
from tests.faults.replica_faults_support import FAULTY_APP, FAULTY_CONFIG
from tests.support import Daemon, GitRemote, free_port, wait_for

pytestmark = pytest.mark.docker

GIT_PASSWORD = "s3cret-pw-7f3a"
WEBHOOK_SECRET = "whk-9d2c-topsecret"
PLAIN_SECRET = "tok-xyz-4417"
ENV_SECRET = "env-abc-8815"
DEFAULT_LISTEN = "127.0.0.1:8265"


def _daemon(tmp: Path, instance: str, repo: str, *extra: str, **env: str) -> Daemon:
    port = free_port()
    args = ["--repo", repo, "--branch", "main", "--config", "serve_config.yaml"]
    args += ["--poll-interval", "1", "--state-dir", str(tmp / "state"), "--instance", instance]
    args += ["--default-image", BASE_IMAGE, "--listen", f"127.0.0.1:{port}", *extra]
    return Daemon(args, port, env, tmp / "daemon.log")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    made: list[Daemon] = []
    yield made
    for d in made:
        d.kill()


def _listening(pid: int) -> list[str]:
    """Local addresses of the TCP sockets process `pid` listens on."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_api_listens_on_loopback_by_default(tmp_path: Path, daemons: list[Daemon]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    help_text = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    assert f"default: {DEFAULT_LISTEN}" in " ".join(help_text.split())
    if not _port_free(8265):
        pytest.skip("port 8265 is taken on this machine; the default address cannot be tried")
    d = _daemon(tmp_path, "tdefault", "file:///nonexistent/repo.git")
    d.args = [a for a in d.args if not a.startswith("127.0.0.1:") and a != "--listen"]
    d.port = 8265
    daemons.append(d.start())
    assert d.proc is not None
    assert _listening(d.proc.pid) == [DEFAULT_LISTEN]


def test_credentials_and_webhook_secret_never_leak(tmp_path: Path, daemons: list[Daemon]) -> None:
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(WEBHOOK_SECRET + "\n")
    repo = f"https://deploy:{GIT_PASSWORD}@127.0.0.1:1/team/x.git"
    d = _daemon(tmp_path, "tleak", repo, "--webhook-secret-file", str(secret_file))
    daemons.append(d.start())
    wait_for(lambda: d.status().get("source_error"), timeout=30, what="the source error")
    body = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()
    signature = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    hooks = [
        {"X-Hub-Signature-256": "sha256=" + signature, "X-GitHub-Event": "push"},  # valid
        {"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Event": "push"},  # forged
        {"X-Gitlab-Token": WEBHOOK_SECRET[:-1], "X-Gitlab-Event": "Push Hook"},  # near miss
    ]
    codes = [
        requests.post(d.url + "/webhook", data=body, headers=h, timeout=5).status_code
        for h in hooks
    ]
    assert codes[0] in (200, 202) and codes[1] == 401 and codes[2] == 401, codes
    wait_for(lambda: d.status()["passes"] >= 3, timeout=30, what="a few passes")
    answers = [
        requests.get(d.url + path, timeout=5).text
        for path in ("/status", "/config", "/history", "/metrics", "/status?format=yaml")
    ]
    d.stop()
    log = d.log_path.read_text(errors="replace")
    assert "127.0.0.1:1" in log and "127.0.0.1:1" in answers[0]  # the error is reported...
    for text in [log, *answers]:
        assert GIT_PASSWORD not in text  # ...without the password
        assert WEBHOOK_SECRET not in text and WEBHOOK_SECRET[:-1] not in text


SECRET_ENV = f"""\
    ray_actor_options:
      num_cpus: 0.05
      runtime_env:
        env_vars:
          PLAIN: visible-value
          TOKEN: {{value: {PLAIN_SECRET}, secret: true}}
          FROM_ENV: {{from_env: G2_SOURCE}}
"""


def _secure_repo(tmp: Path) -> GitRemote:
    tree = tmp / "tree"
    tree.mkdir()
    (tree / "faulty.py").write_text(FAULTY_APP.format(mode="ok"))
    config = FAULTY_CONFIG.format(port=free_port(), faulty_replicas=1, grace=2)
    greeter, faulty = config.split("  - name: Faulty\n")
    greeter = greeter.replace("    ray_actor_options:\n      num_cpus: 0.05\n", SECRET_ENV)
    faulty += "      runtime_env: {image_uri: 'python:3.11-slim'}\n"  # not on the allow-list
    (tree / "serve_config.yaml").write_text(greeter + "  - name: Faulty\n" + faulty)
    return GitRemote.create(tmp / "git", files_from=tree)


def test_hardening_allow_list_and_secret_env(
    tmp_path: Path, daemons: list[Daemon], instance_name: str, docker_client: Any
) -> None:
    remote = _secure_repo(tmp_path)
    allowed = "--allowed-images=serve-reconciler/*"
    d = _daemon(tmp_path, instance_name, remote.url, allowed, G2_SOURCE=ENV_SECRET)
    daemons.append(d.start())
    engine = DockerEngine(instance=instance_name, default_image=BASE_IMAGE)

    def greeter_up_and_faulty_refused() -> bool:
        deps = {x["name"]: x for x in d.status()["deployment_statuses"]}
        return (
            deps["Greeter"]["status"] == "HEALTHY"
            and "not allowed by --allowed-images" in deps["Faulty"]["message"]
        )

    wait_for(greeter_up_and_faulty_refused, timeout=90, what="Greeter up, Faulty refused")
    replicas = engine.observe()
    assert [r.deployment for r in replicas] == ["Greeter"]  # nothing of Faulty was created
    greeter = replicas[0]
    assert greeter.state is ReplicaState.RUNNING

    # The replica gets every value; the API and the log show none of the secret ones.
    def env(name: str) -> Any:
        url = f"{greeter.control_url}/-/call/default/Greeter/env"
        answer = requests.post(url, json={"args": [name], "kwargs": {}}, timeout=10)
        return answer.json()["result"]

    assert [env("PLAIN"), env("TOKEN"), env("FROM_ENV")] == [
        "visible-value",
        PLAIN_SECRET,
        ENV_SECRET,
    ]
    config = requests.get(d.url + "/config", timeout=5).text
    assert "visible-value" in config and "<redacted>" in config
    answers = [config] + [
        requests.get(d.url + path, timeout=5).text
        for path in ("/status", "/history", "/metrics", "/config?format=yaml")
    ]
    log = d.log_path.read_text(errors="replace")
    for text in [log, *answers]:
        assert PLAIN_SECRET not in text and ENV_SECRET not in text

    # Every container of the instance: hardened, and no host path.
    owned = docker_client.containers.list(
        all=True, filters={"label": f"{labels.OWNER}={instance_name}"}
    )
    roles = sorted(c.labels.get(labels.ROLE) for c in owned)
    assert roles == ["ingress", "replica"], roles
    for c in owned:
        host = c.attrs["HostConfig"]
        assert host["Privileged"] is False, c.name
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd"), c.name
        assert "no-new-privileges" in (host.get("SecurityOpt") or []), c.name
        assert 0 < (host.get("PidsLimit") or 0) <= 1024, c.name
        assert not host.get("Binds") and not c.attrs.get("Mounts"), (c.name, c.attrs["Mounts"])
        assert host.get("PidMode") in ("", None), c.name
        # Only the ingress is in the host's network (it binds the config's host:port itself;
        # runtime/ingress_network.py), still as nobody with no capability.
        in_host = host.get("NetworkMode") == "host"
        assert in_host == (c.labels.get(labels.ROLE) == "ingress"), c.name
        assert c.attrs["Config"]["User"] == "65534:65534", c.name
        published = [b["HostIp"] for bs in (host.get("PortBindings") or {}).values() for b in bs]
        assert all(ip == "127.0.0.1" for ip in published), (c.name, published)
        assert not (in_host and published), c.name
        # secret values are not in what `docker inspect` shows (they come in a file)
        inspected = json.dumps(docker_client.api.inspect_container(c.id))
        assert PLAIN_SECRET not in inspected and ENV_SECRET not in inspected, c.name
