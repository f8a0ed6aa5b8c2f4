"""Helpers of the daemon fault tests: a greeter repository with fast health settings, a rig that
starts `reconciler run` on it (same port and state directory across restarts), an inventory of
everything an instance owns on the engine, and a git:// front that can be made to hang."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from reconciler import naming, spec
from reconciler.model import ObservedReplica, ReplicaState
from reconciler.runtime import labels
from reconciler.runtime.docker_engine import DockerEngine
from reconciler.source import export_revision
from tests.conftest import BASE_IMAGE
from tests.e2e.conftest import GREETER as E2E_GREETER
from tests.support import Daemon, GitRemote, free_port, wait_for

# The e2e greeter at version "v0" (the config below sets replicas and user_config).
GREETER = E2E_GREETER.replace('VERSION = "v1"', 'VERSION = "v0"')

# Fast health and shutdown settings: a rollout of 2-3 replicas takes a few seconds.
CONFIG = """\
import_path: greeter:app
host: 127.0.0.1
port: {port}
deployments:
  - name: Greeter
    num_replicas: 2
    user_config:
      greeting: hello
    health_check_period_s: 1
    health_check_timeout_s: 2
    graceful_shutdown_wait_loop_s: 0.1
    graceful_shutdown_timeout_s: 1
    ray_actor_options:
      num_cpus: 0.2
"""


def make_repo(tmp: Path) -> GitRemote:
    tree = tmp / "tree"
    tree.mkdir()
    (tree / "greeter.py").write_text(GREETER)
    (tree / "serve_config.yaml").write_text(CONFIG.format(port=free_port()))
    return GitRemote.create(tmp / "git", files_from=tree)


def target_versions(remote: GitRemote, scratch: Path) -> dict[str, str]:
    """Deployment name -> the version label its replicas must carry at the remote's HEAD, worked
    out the way the daemon does it (the exported commit through the loader)."""
    dest = scratch / f"export-{os.urandom(4).hex()}"
    export_revision(remote.work, "HEAD", dest)
    config = spec.load_config(dest, "serve_config.yaml", environ=os.environ)
    return {d.name: d.version for d in config.deployments()}


@dataclass
class Rig:
    """A repository, an instance and a state directory; daemons started on them in turn."""

    tmp: Path
    remote: GitRemote
    instance: str
    docker: Any  # the docker SDK client of the session
    port: int = field(default_factory=free_port)
    daemons: list[Daemon] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.tmp / "state"

    @property
    def engine(self) -> DockerEngine:
        return DockerEngine(instance=self.instance, default_image=BASE_IMAGE)

    def start(self, *extra: str, repo: str | None = None) -> Daemon:
        args = [
            "--repo",
            repo or self.remote.url,
            "--branch",
            "main",
            "--config",
            "serve_config.yaml",
            "--poll-interval",
            "1",
            "--state-dir",
            str(self.state_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--instance",
            self.instance,
            "--default-image",
            BASE_IMAGE,
            *extra,
        ]
        daemon = Daemon(args, self.port, {}, self.tmp / f"daemon{len(self.daemons)}.log")
        self.daemons.append(daemon)
        return daemon.start()

    def kill_all(self) -> None:
        for daemon in self.daemons:
            daemon.kill()

    # --- what runs ----------------------------------------------------------------------

    def replicas(self) -> list[ObservedReplica]:
        return sorted(self.engine.observe(), key=lambda r: (r.deployment, r.index))

    def running_ids(self) -> set[str]:
        return {r.container_id for r in self.replicas() if r.state == ReplicaState.RUNNING}

    def containers(self) -> list[dict[str, Any]]:
        owner = f"{labels.OWNER}={self.instance}"
        return list(self.docker.api.containers(all=True, filters={"label": [owner]}))

    def networks(self) -> list[dict[str, Any]]:
        name = naming.network_name(self.instance)
        owned = self.docker.api.networks(filters={"label": [f"{labels.OWNER}={self.instance}"]})
        named = self.docker.api.networks(names=[name])
        return list({n["Id"]: n for n in [*owned, *named] if n.get("Name") == name}.values())

    def problems(self, versions: dict[str, str], replicas: int) -> list[str]:
        """Everything that keeps the instance from being exactly `replicas` RUNNING replicas of
        each deployment at its target version, one ingress and one network ([] when clean)."""
        out: list[str] = []
        ingress = [c for c in self.containers() if c["Labels"].get(labels.ROLE) == "ingress"]
        if len(ingress) != 1 or ingress[0]["State"] != "running":
            out.append(f"ingress: {[(c['Names'], c['State']) for c in ingress]}")
        others = [c for c in self.containers() if c["Labels"].get(labels.ROLE) not in _ROLES]
        out += [f"unknown container {c['Names']}" for c in others]
        observed = self.replicas()
        for r in observed:
            if r.version != versions.get(r.deployment):
                out.append(f"{r.name}: version {r.version}, not {versions.get(r.deployment)}")
            if r.state != ReplicaState.RUNNING:
                out.append(f"{r.name}: {r.state.value}")
        for name in versions:
            mine = [r for r in observed if r.deployment == name]
            if len(mine) != replicas:
                out.append(f"{name}: {len(mine)} replicas, not {replicas}")
            if len({r.index for r in mine}) != len(mine):
                out.append(f"{name}: duplicate index in {[r.index for r in mine]}")
        names = [r.name for r in observed]
        if len(set(names)) != len(names) or any(naming.drain_deadline(n) for n in names):
            out.append(f"names not unique or draining: {names}")
        if len(self.networks()) != 1:
            out.append(f"networks: {[n['Id'][:12] for n in self.networks()]}")
        return out


_ROLES = ("ingress", "replica")


def running_at(daemon: Daemon, commit: str) -> bool:
    status = daemon.status()
    return status["app_status"]["status"] == "RUNNING" and status["applied_commit"] == commit


def converge(rig: Rig, daemon: Daemon, commit: str, replicas: int, timeout: float = 90) -> None:
    """Wait until the daemon says RUNNING at `commit` and the engine holds exactly that."""
    versions = target_versions(rig.remote, rig.tmp)
    wait_for(
        lambda: running_at(daemon, commit) and not rig.problems(versions, replicas),
        timeout=timeout,
        interval=0.3,
        what=f"convergence at {commit[:12]}",
    )


def greet_all(rig: Rig) -> set[str]:
    """What every RUNNING replica answers to greet('al')."""
    out = set()
    for r in rig.replicas():
        if r.state == ReplicaState.RUNNING:
            url = f"{r.control_url}/-/call/{r.app}/{r.deployment}/greet"
            body = {"args": ["al"], "kwargs": {}}
            out.add(str(requests.post(url, json=body, timeout=10).json()["result"]))
    return out


# --- a git:// remote that can be made to hang ---------------------------------------------------


class GitFront:
    """`git daemon` serving the bare repository's parent, behind a TCP front on another port.
    While `hang` is set the front accepts connections and never answers (a remote that hangs)."""

    def __init__(self, base: Path, log: Path) -> None:
        self._backend_port = free_port()
        self._daemon = subprocess.Popen(
            [
                "git",
                "daemon",
                "--export-all",
                "--reuseaddr",
                f"--base-path={base}",
                "--listen=127.0.0.1",
                f"--port={self._backend_port}",
                str(base),
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.hang = threading.Event()
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        wait_for(self._backend_up, timeout=10, what="git daemon to listen")

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def _backend_up(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self._backend_port), timeout=1),
        ):
            return True
        return False

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.hang.is_set():
                self._held.append(client)  # accepted, never answered
                continue
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            backend = socket.create_connection(("127.0.0.1", self._backend_port), timeout=10)
        except OSError:
            client.close()
            return
        pump = threading.Thread(target=_pipe, args=(backend, client), daemon=True)
        pump.start()
        _pipe(client, backend)
        pump.join(timeout=10)
        client.close()
        backend.close()

    def release(self) -> None:
        """Stop hanging: new connections are served; held ones are closed."""
        self.hang.clear()
        held, self._held = self._held, []
        for sock in held:
            sock.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self.release()
        self._daemon.terminate()
        self._daemon.wait(timeout=10)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def git_front(base: Path, log: Path) -> Iterator[GitFront]:
    front = GitFront(base, log)
    try:
        yield front
    finally:
        front.close()
