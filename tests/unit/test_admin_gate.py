"""The ingress's admin gate on a swarm (reconciler/replica/admin_gate.py, a real process): the
token first, then one command relayed to HAProxy's unix socket (here a stand-in that records
what reaches it); a wrong token relays nothing; SIGTERM reaches its child (HAProxy) and the gate
ends with it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.runtime.haproxy_admin import AdminError
from reconciler.runtime.swarm_ingress import GatedAdmin
from tests.support import free_port, wait_for

GATE = Path(__file__).parents[2] / "reconciler" / "replica" / "admin_gate.py"


class FakeHaproxy:
    """A unix socket that answers `show info` as HAProxy's runtime API does."""

    def __init__(self, path: Path) -> None:
        self.commands: list[str] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile("rb").readline().decode().strip()
                self.commands.append(line)
                conn.sendall(b"Name: HAProxy\nVersion: 2.6\n" if line == "show info" else b"")


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[tuple[int, FakeHaproxy, subprocess.Popen[bytes]]]:
    token = tmp_path / "token"
    token.write_text("gate-token\n")
    fake = FakeHaproxy(tmp_path / "haproxy.sock")
    port = free_port()
    child = [sys.executable, "-c", "import time; time.sleep(60)"]
    sock = str(tmp_path / "haproxy.sock")
    proc = subprocess.Popen([sys.executable, str(GATE), str(port), str(token), sock, "--", *child])
    try:
        wait_for(lambda: _listening(port), timeout=10, what="the gate listening")
        yield port, fake, proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        fake.server.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_the_token_lets_one_command_through_and_a_wrong_one_nothing(
    gate: tuple[int, FakeHaproxy, subprocess.Popen[bytes]],
) -> None:
    port, fake, _ = gate
    assert GatedAdmin(("127.0.0.1", port), "gate-token").show_info()["Name"] == "HAProxy"
    assert fake.commands == ["show info"]
    with pytest.raises(AdminError, match="admin gate: refused"):
        GatedAdmin(("127.0.0.1", port), "gate-tokeN").command("show info")
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.sendall(b"show info\n")  # a command where the token should be
    assert raw.recv(100) == b"admin gate: refused\n"
    raw.close()
    assert fake.commands == ["show info"]  # nothing else reached HAProxy


def test_a_command_the_gate_cannot_relay_is_an_error_not_an_empty_success(
    gate: tuple[int, FakeHaproxy, subprocess.Popen[bytes]],
) -> None:
    """HAProxy answers a `set server` that worked with nothing: an empty answer from a gate that
    could not reach HAProxy read as success, and the server stayed out of rotation."""
    port, fake, _ = gate
    Path(fake.server.getsockname()).unlink()  # HAProxy's socket is gone (HAProxy restarting)
    admin = GatedAdmin(("127.0.0.1", port), "gate-token", timeout_s=10)
    with pytest.raises(AdminError, match="cannot relay to HAProxy"):
        admin.enable_server("be_x", "srv")


def test_sigterm_goes_to_haproxy_and_the_gate_ends_with_it(
    gate: tuple[int, FakeHaproxy, subprocess.Popen[bytes]],
) -> None:
    _, _, proc = gate
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) != 0  # the child's end (killed by SIGTERM), at once
