"""The command line as a newcomer meets it: every `--help` reads well, and the obvious mistakes
(no --repo, a dead repository URL, a taken port, a locked state directory, no Docker engine, a
missing config, a dead API address) end with a message that says what to do, never a traceback."""

from __future__ import annotations

import argparse
import fcntl
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import build_parser
from reconciler.cli.priority import scheduling_group
from tests.support import EXAMPLES, Daemon, free_port

COMMANDS = (
    "run", "up", "down", "validate", "diff", "build", "status", "config", "pin", "unpin",
    "rollback",
)  # fmt: skip


def reconciler(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_top_level_help_lists_every_command() -> None:
    result = reconciler("--help")
    assert result.returncode == 0, result.stderr
    assert "A pushed commit is the deploy" in " ".join(result.stdout.split())  # wrapped
    for command in COMMANDS:
        assert f"\n    {command} " in result.stdout, f"{command} missing from --help"


def test_no_command_prints_help_and_exits_2() -> None:
    result = reconciler()
    assert result.returncode == 2
    assert "usage: reconciler" in result.stderr and "COMMAND --help" in result.stderr


def test_version() -> None:
    from reconciler import __version__

    result = reconciler("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"reconciler {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(command: str) -> None:
    result = reconciler(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: reconciler {command}")
    parser = _subparsers()[command]
    assert parser.description and len(parser.description) > 40, "a sentence saying what it does"
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        assert action.help and action.help.strip(" []"), f"{command} {action.dest}: no help"
        # A help that is only the env var and default says nothing about the flag itself.
        assert not action.help.startswith("["), f"{command} {action.dest}: {action.help!r}"


def test_every_command_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for command in COMMANDS:
        assert f"`reconciler {command}" in readme, f"README does not describe {command}"


def test_down_offers_only_the_flags_it_uses() -> None:
    result = reconciler("down", "--help")
    assert "--instance" in result.stdout
    assert "--default-image" not in result.stdout and "--publish-host" not in result.stdout


# --- the obvious mistakes -------------------------------------------------------------------


def _says(result: subprocess.CompletedProcess[str], *words: str) -> None:
    text = result.stderr
    assert "Traceback" not in text, text
    for word in words:
        assert word in text, f"{word!r} not in:\n{text}"


def test_run_without_repo(tmp_path: Path) -> None:
    result = reconciler("run", "--state-dir", str(tmp_path), env={"RECONCILER_REPO": ""})
    assert result.returncode == 2
    _says(result, "--repo URL", "RECONCILER_REPO")


def test_run_once_with_a_repository_that_does_not_exist(tmp_path: Path) -> None:
    missing = f"file://{tmp_path}/nowhere.git"
    result = reconciler(
        "run", "--once", "--once-timeout", "1", "--repo", missing,
        "--state-dir", str(tmp_path / "state"), "--listen", f"127.0.0.1:{free_port()}",
        "--instance", "t-help-norepo",
    )  # fmt: skip
    assert result.returncode == 3
    _says(result, "gave up", "nowhere.git", "does not appear to be a git repository")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_run_on_a_port_in_use(tmp_path: Path, taken_port: int) -> None:
    result = reconciler(
        "run", "--repo", f"file://{tmp_path}/r.git", "--state-dir", str(tmp_path / "s"),
        "--listen", f"127.0.0.1:{taken_port}", "--instance", "t-help-port",
    )  # fmt: skip
    assert result.returncode == 1
    _says(result, f"cannot listen on 127.0.0.1:{taken_port}", "in use", "--listen")


def test_run_on_a_locked_state_dir(tmp_path: Path) -> None:
    # Hold the lock the way a running daemon does (an flock on the lock file holding its pid).
    from reconciler.state import LOCK_NAME

    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, str(os.getpid()).encode())
        result = reconciler(
            "run", "--repo", f"file://{tmp_path}/r.git", "--state-dir", str(tmp_path),
            "--listen", f"127.0.0.1:{free_port()}",
        )  # fmt: skip
    finally:
        os.close(fd)
    assert result.returncode == 1
    _says(result, f"another reconciler (pid {os.getpid()})", "--state-dir")


def test_no_docker_engine() -> None:
    result = reconciler(
        "down", "--instance", "t-help-nodocker", env={"DOCKER_HOST": "unix:///nonexistent"}
    )
    assert result.returncode == 3
    _says(result, "Docker engine is not reachable", "DOCKER_HOST", "docker info")


def test_validate_a_missing_file(tmp_path: Path) -> None:
    result = reconciler("validate", str(tmp_path / "serve_config.yaml"))
    assert result.returncode == 2
    _says(result, "no such file")


def test_missing_config_in_the_repository_says_where_it_looked(tmp_path: Path) -> None:
    from reconciler import spec
    from reconciler.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        spec.load_config(EXAMPLES, "deploy/serve_config.yaml")
    text = str(caught.value)
    assert "deploy/serve_config.yaml" in text and "No such file" in text
    assert "relative to the repository root" in text and "--config" in text


def test_status_and_config_to_a_dead_port() -> None:
    port = free_port()
    for command in ("status", "config"):
        result = reconciler(command, "-a", f"127.0.0.1:{port}")
        assert result.returncode == 1
        _says(result, "connection refused", "reconciler run", "--address")


def test_run_nice_out_of_range(tmp_path: Path) -> None:
    result = reconciler("run", "--repo", f"file://{tmp_path}/r.git", "--nice", "-21")
    assert result.returncode == 2
    _says(result, "--nice must be from -20 to 19")


def _thread_nices(pid: int) -> list[int]:
    nices = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        stat = (task / "stat").read_text()
        nices.append(int(stat[stat.rindex(")") + 2 :].split()[16]))  # field 19: nice
    return nices


def _daemon_at_nice_7(tmp_path: Path, new_session: bool = False) -> Daemon:
    # A positive value needs no privilege.
    port = free_port()
    args = ["--repo", f"file://{tmp_path}/r.git", "--state-dir", str(tmp_path / "s")]
    args += ["--listen", f"127.0.0.1:{port}", "--instance", "t-help-nice", "--nice", "7"]
    return Daemon(args, port, {}, tmp_path / "daemon.log", new_session=new_session).start()


def test_run_nice_reaches_every_thread_of_the_daemon(tmp_path: Path) -> None:
    # The API, scheduler and worker threads all inherit it.
    daemon = _daemon_at_nice_7(tmp_path)
    try:
        assert daemon.proc is not None
        nices = _thread_nices(daemon.proc.pid)
        assert len(nices) > 3 and set(nices) == {7}, nices
    finally:
        daemon.kill()


def _autogroup(pid: int | str) -> str:
    return Path(f"/proc/{pid}/autogroup").read_text().strip()


def _needs_autogroup() -> None:
    group = scheduling_group(
        Path("/proc/sys/kernel/sched_autogroup_enabled").read_text(),
        Path("/proc/self/cgroup").read_text(),
        Path("/sys/fs/cgroup"),
    )
    if group != "session":
        pytest.skip("this kernel does not group tasks by session here (autogroup off)")


def test_run_nice_sets_the_session_group_when_the_daemon_leads_its_session(
    tmp_path: Path,
) -> None:
    # With autogroup, nice alone ranks the daemon only within its session (priority.py).
    _needs_autogroup()
    daemon = _daemon_at_nice_7(tmp_path, new_session=True)
    try:
        assert daemon.proc is not None
        assert _autogroup(daemon.proc.pid).endswith(" nice 7")
        assert _autogroup(daemon.proc.pid) != _autogroup("self")
        assert "autogroup" not in daemon.log()
    finally:
        daemon.kill()


def test_run_nice_in_a_shared_session_says_it_counts_only_there(tmp_path: Path) -> None:
    _needs_autogroup()
    ours = _autogroup("self")
    daemon = _daemon_at_nice_7(tmp_path)
    try:
        assert daemon.proc is not None
        assert _autogroup(daemon.proc.pid) == ours == _autogroup("self")  # not changed for us
        assert "ranks the daemon only among the processes of its session" in daemon.log()
        assert "setsid -w reconciler run" in daemon.log()
    finally:
        daemon.kill()


def test_run_max_parallel_starts_must_not_be_negative(tmp_path: Path) -> None:
    result = reconciler("run", "--repo", f"file://{tmp_path}/r.git", "--max-parallel-starts", "-1")
    assert result.returncode == 2
    _says(result, "--max-parallel-starts must be 0 or more")


@pytest.mark.parametrize(
    ("name", "why"),
    [("x" * 50, "longer than a DNS label"), ("a--b", "holds '--'"), ("", "it is empty")],
)
def test_instance_names_that_would_break_container_or_dns_names(name: str, why: str) -> None:
    # 50 characters made `serve-<instance>-ingress` a 64-character DNS label: every handle call
    # from a replica to the router failed ("label too long")
    result = reconciler("run", "--repo", "file:///nowhere.git", f"--instance={name}")
    assert result.returncode == 2
    _says(result, "invalid instance name", why)


def test_any_instance_name_can_still_be_taken_down() -> None:
    # what an earlier version accepted must remain removable: `down` reaches the engine
    nowhere = {"DOCKER_HOST": "unix:///nonexistent"}
    for name in ("x" * 50, "a--b", "team a"):
        result = reconciler("down", f"--instance={name}", env=nowhere)
        assert result.returncode == 3, result.stderr
        _says(result, "Docker engine is not reachable")
    from reconciler.cli.common import instance_name

    assert instance_name("x" * 49) == "x" * 49 and instance_name("team a") == "team a"
