"""The ingress's admin gate on Docker Swarm: HAProxy's runtime API behind a token.

HAProxy's runtime API has no authentication, and a port Swarm publishes in host mode is open on
every address of its node. So HAProxy keeps its API on a unix socket inside the container, and
this gate, beside it in the ingress task, listens on a TCP port: a client sends the token on the
first line, then one command; the gate relays that command to the socket and HAProxy's answer
back, and closes. A wrong token gets the connection closed with nothing relayed.

`python3 admin_gate.py PORT TOKEN_FILE SOCKET`. Standard library only (it runs in the ingress
image, next to HAProxy); the engine ships it as a Swarm config.
"""

from __future__ import annotations

import hmac
import socket
import socketserver
import sys

MAX_LINE = 64 * 1024
TIMEOUT_S = 10.0


class Gate(socketserver.StreamRequestHandler):
    timeout = TIMEOUT_S
    token: bytes = b""
    socket_path: str = ""

    def handle(self) -> None:
        given = self.rfile.readline(MAX_LINE)
        if not given.endswith(b"\n") or not hmac.compare_digest(given.strip(), self.token):
            return
        command = self.rfile.readline(MAX_LINE)
        if not command.endswith(b"\n"):
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as admin:
            admin.settimeout(TIMEOUT_S)
            admin.connect(self.socket_path)
            admin.sendall(command)
            while chunk := admin.recv(65536):
                self.wfile.write(chunk)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    address_family = socket.AF_INET


def main(argv: list[str]) -> None:
    port, token_file, socket_path = int(argv[1]), argv[2], argv[3]
    with open(token_file, "rb") as f:
        Gate.token = f.read().strip()
    if not Gate.token:
        raise SystemExit(f"admin gate: the token file {token_file} is empty")
    Gate.socket_path = socket_path
    with Server(("0.0.0.0", port), Gate) as server:
        server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
