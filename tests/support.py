"""Helpers for end-to-end tests: waiting on conditions, git remotes, a daemon subprocess."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples-repo"
T = TypeVar("T")


class WaitTimeout(AssertionError, TimeoutError):
    """A condition did not come true in time (a test failure, and a TimeoutError for the bench)."""


def wait_for(
    probe: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    pause = threading.Event()
    while True:
        try:
            last = probe()
        except Exception as exc:  # a probe may fail while things come up
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        pause.wait(interval)


# Ports for what a test binds later (an API, an ingress), from below the kernel's ephemeral range
# (32768-60999 by default): Docker hands replicas host ports from that range, and a port picked
# there with bind(0) could be given to a replica before the test's ingress binds it. Never the
# same port twice in one process.
_PORTS_BELOW = 32768
_PORTS_FROM = 20000
_handed_out: set[int] = set()
_ports_lock = threading.Lock()
_port_choice = random.Random()  # its own: Hypothesis reseeds the global one


def free_port() -> int:
    high = min(_PORTS_BELOW, _ephemeral_low())
    low = max(1024, min(_PORTS_FROM, high - 4000))
    with _ports_lock:
        for _ in range(1000 if high - low >= 1000 else 0):
            port = _port_choice.randrange(low, high)
            if port in _handed_out:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _handed_out.add(port)
            return port
        with socket.socket() as s:  # an odd port range: the kernel's choice
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _PORTS_BELOW


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@dataclass
class GitRemote:
    """A bare repository (the remote) and a work clone to commit and push from."""

    bare: Path
    work: Path
    branch: str = "main"

    @classmethod
    def create(cls, tmp: Path, files_from: Path | None = None, branch: str = "main") -> GitRemote:
        bare, work = tmp / "remote.git", tmp / "work"
        subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(bare)], check=True)
        work.mkdir()
        git(work, "init", "-q", "-b", branch)
        git(work, "remote", "add", "origin", str(bare))
        remote = cls(bare, work, branch)
        if files_from is not None:
            shutil.copytree(files_from, work, dirs_exist_ok=True)
            remote.commit_all("initial commit")
        return remote

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def write(self, relpath: str, text: str) -> None:
        path = self.work / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def edit(self, relpath: str, old: str, new: str) -> None:
        path = self.work / relpath
        text = path.read_text()
        assert old in text, f"{old!r} not in {relpath}"
        path.write_text(text.replace(old, new, 1))

    def commit_all(self, message: str, push: bool = True) -> str:
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message)
        if push:
            git(self.work, "push", "-q", "origin", f"HEAD:{self.branch}")
        return git(self.work, "rev-parse", "HEAD")

    def force_push(self, commit: str) -> None:
        git(self.work, "reset", "-q", "--hard", commit)
        git(self.work, "push", "-q", "--force", "origin", f"HEAD:{self.branch}")


@dataclass
class Daemon:
    """`reconciler run` as a subprocess, and a client for its API."""

    args: list[str]
    port: int
    env: Mapping[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    new_session: bool = False  # lead a session of its own, as under a service manager

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Daemon:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", *self.args],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=self.new_session,
        )
        wait_for(self._answers, timeout=30, what="the daemon's API to answer")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code in (200, 503)
        except requests.ConnectionError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def status(self) -> dict[str, Any]:
        response = requests.get(self.url + "/status", timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def app_status(self) -> str:
        return str(self.status()["app_status"]["status"])

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
