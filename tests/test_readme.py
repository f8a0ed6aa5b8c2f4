"""A newcomer's path, as written: clone the repository, run the README's two commands.

The commands are read from README.md (the first two fenced blocks after the title), so the README
and this test cannot drift apart. The clone is of the committed HEAD: work that is not committed
is not in it, which is the point. The demo runs with free ports and its own instance name, must
reach RUNNING and answer the fruit request, and must stop on Ctrl-C (SIGINT) leaving nothing
behind; the test command then runs narrowed to two quick tests, so the suite does not recurse.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import remove_owned
from tests.support import ROOT, free_port, wait_for

pytestmark = pytest.mark.docker

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)


def readme_commands() -> list[str]:
    """The first two fenced blocks after the title, each one command line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("# "), "README.md starts with its title"
    blocks = [block.strip() for block in FENCE.findall(text)[:2]]
    assert len(blocks) == 2 and all("\n" not in b for b in blocks), blocks
    return blocks


def test_the_two_commands_are_the_documented_scripts() -> None:
    assert readme_commands() == ["scripts/demo", "scripts/test"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("newcomer") / "serve-reconciler"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True, timeout=120)
    yield where
    shutil.rmtree(where, ignore_errors=True)  # its .venv is large


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "VIRTUAL_ENV"))}
    return {**env, **extra}


def _ask(ingress: int) -> object:
    answer = requests.post(f"http://127.0.0.1:{ingress}/", json=["MANGO", 2], timeout=5)
    return answer.status_code == 200 and answer.json()


def test_demo_then_tests_from_a_fresh_clone(  # type: ignore[no-untyped-def]
    clone: Path, tmp_path: Path, docker_client
) -> None:
    demo, tests = readme_commands()
    api, ingress, instance = free_port(), free_port(), f"t{os.getpid()}readme"
    log = tmp_path / "demo.out"
    env = _env(
        DEMO_API_PORT=str(api),
        DEMO_INGRESS_PORT=str(ingress),
        DEMO_INSTANCE=instance,
        DEMO_DIR=str(tmp_path / "demo"),
    )
    with log.open("wb") as out:
        # A session of its own: SIGINT to its group is what Ctrl-C in a terminal sends.
        proc = subprocess.Popen(
            ["bash", "-c", demo], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _demo_comes_up(proc, log, api, ingress)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=90) == 0, log.read_text(errors="replace")[-3000:]
        assert "demo: stopped" in _plain(log)
        owned = docker_client.containers.list(
            all=True, filters={"label": f"io.serve-reconciler.owner={instance}"}
        )
        assert owned == [], [c.name for c in owned]
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        remove_owned(docker_client, instance)

    # Two quick tests that need the clone's fresh .venv: the CLI runs, and the README's config
    # reference matches the clone's schema. (Not ruff over the tree: its target list names
    # directories that another engineer's uncommitted work may not have put in HEAD yet.)
    quick = (
        "tests/test_cli_help.py::test_version "
        "tests/test_config_reference.py::test_readme_section_is_what_the_generator_makes"
    )
    result = subprocess.run(
        ["bash", "-c", tests],
        cwd=clone,
        env=_env(PYTEST_ADDOPTS=f"-p no:cacheprovider {quick}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert re.search(r"\b2 passed\b", result.stdout), result.stdout[-2000:]
    assert "setup: Docker engine is running" in re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)


def _plain(log: Path) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))


def _demo_comes_up(proc: subprocess.Popen[bytes], log: Path, api: int, ingress: int) -> None:
    def status() -> object:
        if proc.poll() is not None:
            raise AssertionError(f"the demo exited with {proc.returncode}:\n{_plain(log)[-3000:]}")
        body = requests.get(f"http://127.0.0.1:{api}/status", timeout=5).json()
        return body["app_status"]["status"] == "RUNNING"

    wait_for(status, timeout=240, interval=1, what="the demo's /status to say RUNNING")
    assert wait_for(lambda: _ask(ingress), timeout=30, what="the fruit answer") == 6
    # The demo says where things answer once its first rollout is done.
    wait_for(
        lambda: "The fruit stand is deployed" in _plain(log), timeout=30, what="the demo's URLs"
    )
    text = _plain(log)
    assert f"http://127.0.0.1:{ingress}/" in text and f"127.0.0.1:{api}" in text
    assert "demo:   RUNNING" in text, "the rollout's progress lines"


class FreshMachine:
    """A network namespace with no engine running, and DOCKER_HOST naming a socket nobody
    answers: what `scripts/setup` sees on a fresh machine. The engine the demo starts there has
    its state beside the socket; everything is removed at the end."""

    def __init__(self, base: Path) -> None:
        self.netns = f"rfresh{os.getpid()}"
        self.dir = base
        self.docker_host = f"unix://{base}/docker.sock"
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)

    def run(self, *argv: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """A command inside the namespace (nsenter keeps the cgroup mounts dockerd needs)."""
        return subprocess.run(
            ["nsenter", f"--net=/run/netns/{self.netns}", *argv],
            capture_output=True, text=True, **kwargs,  # type: ignore[call-overload]
        )  # fmt: skip

    def get(self, url: str) -> str:
        return str(self.run("curl", "-s", "--max-time", "5", url, timeout=30).stdout)

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", self.docker_host, *args], capture_output=True, text=True, timeout=60
        )

    def engine_pid(self) -> int | None:
        try:
            pid = int((self.dir / "dockerd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if Path(f"/proc/{pid}").exists() else None

    def close(self) -> None:
        pid = self.engine_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            wait_for(lambda: self.engine_pid() is None, timeout=60, what="the new dockerd to stop")
        subprocess.run(["ip", "netns", "del", self.netns], check=False)
        mounts = [
            line.split()[1]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(self.dir))
        ]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_demo_on_a_machine_where_no_engine_runs(clone: Path, tmp_path: Path) -> None:
    """Issue 21: on a machine where no engine ran, the demo's setup starts one; Ctrl-C in the
    demo's terminal (SIGINT to its process group) stops the demo and removes its containers, and
    the engine lives on (it was started in a session of its own)."""
    if os.geteuid() != 0 or not shutil.which("nsenter") or not shutil.which("ip"):
        pytest.skip("needs root, nsenter and ip to make a machine without an engine")
    demo, _ = readme_commands()
    if not (clone / ".venv" / ".installed").exists():  # the package index is outside the netns
        subprocess.run(["scripts/setup"], cwd=clone, check=True, capture_output=True, timeout=600)
    machine = FreshMachine(Path(tempfile.mkdtemp(prefix="rfresh", dir="/tmp")))
    api, ingress = free_port(), free_port()
    log = tmp_path / "demo.out"
    env = _env(
        DOCKER_HOST=machine.docker_host,
        DEMO_API_PORT=str(api),
        DEMO_INGRESS_PORT=str(ingress),
        DEMO_INSTANCE=f"t{os.getpid()}fresh",
        DEMO_DIR=str(tmp_path / "demo"),
    )
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{machine.netns}", "bash", "-c", demo],
                cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            def running() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"the demo exited:\n{_plain(log)[-3000:]}")
                return '"RUNNING"' in machine.get(f"http://127.0.0.1:{api}/status")

            wait_for(running, timeout=300, interval=1, what="the demo RUNNING on the new engine")
            assert "no Docker engine answers: starting dockerd" in _plain(log)
            def mango() -> str:
                asked = ("curl", "-s", "-d", '["MANGO", 2]', f"http://127.0.0.1:{ingress}/")
                return str(machine.run(*asked, timeout=30).stdout.strip() == "6")

            wait_for(lambda: mango() == "True", timeout=30, what="the fruit answer")
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
            assert proc.wait(timeout=90) == 0, _plain(log)[-3000:]
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        text = _plain(log)
        assert "demo: stopped" in text and "could not remove them" not in text, text[-2000:]
        assert machine.engine_pid() is not None, "Ctrl-C in the demo stopped the engine"
        left = machine.docker("ps", "-aq")
        assert left.returncode == 0 and left.stdout.strip() == "", left
    finally:
        machine.close()
