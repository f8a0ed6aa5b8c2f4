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
