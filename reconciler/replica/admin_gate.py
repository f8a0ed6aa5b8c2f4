"""The ingress's admin gate on Docker Swarm: HAProxy's runtime API behind a token.

HAProxy's runtime API has no authentication, and a port Swarm publishes in host mode is open on
every address of its node. So HAProxy keeps its API on a unix socket inside the container, and
this gate, beside it in the ingress task, listens on a TCP port: a client sends the token on the
first line, then one command; the gate relays that command to the socket and HAProxy's answer
back, and closes. A wrong token gets `admin gate: refused` and nothing relayed; a command the
gate could not relay (HAProxy's socket did not take the connection within a second: HAProxy is
starting, or busy) gets `admin gate: ...` saying why, never an empty answer, which HAProxy gives
for a command that succeeded.

`python3 admin_gate.py PORT TOKEN_FILE SOCKET -- haproxy ARGS...`: the gate is the task's first
process and starts HAProxy as its child, passing it SIGTERM and SIGINT, and ends with it (with
the gate as HAProxy's child instead, HAProxy's master waited for it at a stop, until Swarm killed
the task 10 s later). Standard library only (it runs in the ingress image, beside HAProxy); the
engine ships it as a Swarm config.
"""

from __future__ import annotations

import hmac
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time

MAX_LINE = 64 * 1024
TIMEOUT_S = 10.0
CONNECT_TRIES, CONNECT_PAUSE_S = 10, 0.1  # HAProxy's socket may refuse for a moment


class Gate(socketserver.StreamRequestHandler):
    timeout = TIMEOUT_S
    token: bytes = b""
    socket_path: str = ""

    def handle(self) -> None:
        given = self.rfile.readline(MAX_LINE)
        if not given.endswith(b"\n") or not hmac.compare_digest(given.strip(), self.token):
            self.wfile.write(b"admin gate: refused\n")
            return
        command = self.rfile.readline(MAX_LINE)
        if not command.endswith(b"\n"):
            self.wfile.write(b"admin gate: no command\n")
            return
        try:
            with self._connect() as admin:
                admin.sendall(command)
                while chunk := admin.recv(65536):
                    self.wfile.write(chunk)
        except OSError as exc:
            self.wfile.write(f"admin gate: cannot relay to HAProxy: {exc}\n".encode())

    def _connect(self) -> socket.socket:
        for attempt in range(CONNECT_TRIES):
            admin = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            admin.settimeout(TIMEOUT_S)
            try:
                admin.connect(self.socket_path)
                return admin
            except (ConnectionRefusedError, FileNotFoundError, BlockingIOError):
                admin.close()
                if attempt == CONNECT_TRIES - 1:
                    raise
                time.sleep(CONNECT_PAUSE_S)
        raise AssertionError("unreachable")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    address_family = socket.AF_INET


def main(argv: list[str]) -> int:
    split = argv.index("--")
    port, token_file, socket_path = int(argv[1]), argv[2], argv[3]
    command = argv[split + 1 :]
    with open(token_file, "rb") as f:
        Gate.token = f.read().strip()
    if not Gate.token:
        raise SystemExit(f"admin gate: the token file {token_file} is empty")
    Gate.socket_path = socket_path
    child = subprocess.Popen(command)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
        signal.signal(signum, lambda sig, frame: child.send_signal(sig))
    server = Server(("0.0.0.0", port), Gate)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
