"""HAProxy's runtime API (the CLI of a `stats socket`), as a small typed client: one command per
connection, over a unix socket (a path) or a TCP stream socket (host, port). No Docker here: any
engine that can reach an ingress's admin socket drives it through this.

What is used (HAProxy 2.6 `management.txt` section 9.3):
- `show stat [-1 <types> -1]` (CSV) -> `StatRow`s: per server `scur` (requests running on it,
  capped by its `maxconn`; idle pooled connections are not counted) and `qcur`; per backend the
  aggregate `scur`, which also counts requests queued for a server or held before one is picked;
- `show servers state [<backend>]` -> `ServerState`s: address, operational and admin state;
- `add server` / `del server` (the backend needs a dynamic algorithm: leastconn and consistent
  hashing are), `set server ... state|addr|weight`, `set maxconn server`, `enable|disable
  health`, `enable|disable server`.

The CLI has no status codes: each command's success is its known answer (mostly empty), and any
other answer is raised as `AdminError` with HAProxy's own words.
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.errors import EngineError

Address = str | tuple[str, int]  # a unix socket path, or (host, port)

# `show stat` type mask (management.txt 9.3 "show stat")
FRONTENDS, BACKENDS, SERVERS = 1, 2, 4
# srv_admin_state bits (HAProxy's enum srv_admin)
_ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20  # forced, inherited, from the config, resolution
_ADMIN_DRAIN = 0x08 | 0x10  # forced, inherited
OP_STOPPED, OP_STARTING, OP_RUNNING, OP_STOPPING = 0, 1, 2, 3
SERVER_STATES = ("ready", "drain", "maint")
_MAX_ANSWER = 64 << 20


class AdminError(EngineError):
    """The admin socket cannot be reached, or HAProxy refused a command (its words)."""


@dataclass(frozen=True)
class StatRow:
    """One line of `show stat`: a frontend, a backend (`server == "BACKEND"`) or a server."""

    proxy: str
    server: str  # FRONTEND, BACKEND or the server's name
    status: str  # UP, DOWN, DRAIN, MAINT, NOLB, "UP 1/3"...
    scur: int  # current sessions: requests in flight (backend: also those waiting)
    qcur: int  # requests queued for a server
    slim: int | None  # the server's maxconn (None: no limit)
    active: int  # backend: servers UP and in rotation; server: 1 if it is one of them
    total: int  # sessions served so far (stot)

    @property
    def is_backend(self) -> bool:
        return self.server == "BACKEND"

    @property
    def is_server(self) -> bool:
        return self.server not in ("BACKEND", "FRONTEND")

    @property
    def in_flight(self) -> int:
        return self.scur + self.qcur


@dataclass(frozen=True)
class ServerState:
    """One server of `show servers state`."""

    backend: str
    name: str
    address: str
    port: int
    op_state: int  # OP_STOPPED, OP_STARTING, OP_RUNNING, OP_STOPPING
    admin_state: int  # srv_admin_state bits
    weight: int

    @property
    def in_maintenance(self) -> bool:
        return bool(self.admin_state & _ADMIN_MAINT)

    @property
    def draining(self) -> bool:
        return bool(self.admin_state & _ADMIN_DRAIN) and not self.in_maintenance

    @property
    def ready(self) -> bool:
        """In rotation as far as the admin state goes (its health checks may still fail)."""
        return not self.admin_state & (_ADMIN_MAINT | _ADMIN_DRAIN)


class HaproxyAdmin:
    """The runtime API of one HAProxy process at `address` (a unix path or (host, port))."""

    def __init__(self, address: Address, timeout_s: float = 2.0) -> None:
        self.address = address
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"HaproxyAdmin({self.address!r})"

    # --- the transport -------------------------------------------------------------------

    def command(self, line: str) -> str:
        """Send one command, return HAProxy's whole answer (it closes the connection after)."""
        if "\n" in line or ";" in line:
            raise ValueError(f"one command at a time, without ';' or newlines: {line!r}")
        try:
            with self._connect() as sock:
                sock.sendall(line.encode("ascii") + b"\n")
                return _read_all(sock).decode("utf-8", "replace")
        except OSError as exc:
            raise AdminError(f"the HAProxy admin socket at {self._where()} {exc}") from exc

    def _connect(self) -> socket.socket:
        if isinstance(self.address, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout_s)
            try:
                sock.connect(self.address)
            except OSError:
                sock.close()
                raise
            return sock
        return socket.create_connection(self.address, timeout=self.timeout_s)

    def _where(self) -> str:
        if isinstance(self.address, str):
            return self.address
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _expect(self, line: str, *accepted: str) -> None:
        """Run `line`; its answer (stripped) must be empty or start with one of `accepted`."""
        answer = self.command(line).strip()
        if answer and not any(answer.startswith(a) for a in accepted):
            raise AdminError(f"HAProxy refused `{line}`: {answer}")

    # --- reading ---------------------------------------------------------------------------

    def show_stat(self, types: int = FRONTENDS | BACKENDS | SERVERS) -> list[StatRow]:
        return parse_stat(self.command(f"show stat -1 {types} -1"))

    def show_servers_state(self, backend: str | None = None) -> list[ServerState]:
        line = "show servers state" + (f" {_word(backend)}" if backend else "")
        answer = self.command(line)
        if backend and answer.startswith("Can't find backend"):
            return []
        return parse_servers_state(answer)

    def show_info(self) -> dict[str, str]:
        pairs = (line.partition(":") for line in self.command("show info").splitlines())
        return {k.strip(): v.strip() for k, sep, v in pairs if sep}

    # --- changing servers ------------------------------------------------------------------

    def add_server(
        self, backend: str, name: str, address: str, port: int, options: Sequence[str] = ()
    ) -> None:
        """A new server, in maintenance until `enable_server` (and its checks until
        `enable_health`), as HAProxy creates dynamic servers."""
        words = " ".join(_word(o) for o in options)
        target = f"{_server(backend, name)} {_addr(address)}:{int(port)}"
        self._expect(f"add server {target} {words}".rstrip(), "New server registered")

    def del_server(self, backend: str, name: str) -> None:
        """Remove a server; HAProxy refuses one that is not in maintenance or still has
        connections or a queue."""
        self._expect(f"del server {_server(backend, name)}", "Server deleted")

    def set_server_state(self, backend: str, name: str, state: str) -> None:
        if state not in SERVER_STATES:
            raise ValueError(f"state must be one of {SERVER_STATES}, not {state!r}")
        self._expect(f"set server {_server(backend, name)} state {state}")

    def set_server_addr(self, backend: str, name: str, address: str, port: int) -> None:
        self._expect(
            f"set server {_server(backend, name)} addr {_addr(address)} port {int(port)}",
            "IP changed",
            "no need to change",
            "port changed",
        )

    def set_server_weight(self, backend: str, name: str, weight: int) -> None:
        self._expect(f"set server {_server(backend, name)} weight {int(weight)}")

    def set_server_maxconn(self, backend: str, name: str, maxconn: int) -> None:
        self._expect(f"set maxconn server {_server(backend, name)} {int(maxconn)}")

    def enable_health(self, backend: str, name: str) -> None:
        self._expect(f"enable health {_server(backend, name)}")

    def disable_health(self, backend: str, name: str) -> None:
        self._expect(f"disable health {_server(backend, name)}")

    def enable_server(self, backend: str, name: str) -> None:
        self._expect(f"enable server {_server(backend, name)}")

    def disable_server(self, backend: str, name: str) -> None:
        self._expect(f"disable server {_server(backend, name)}")


# --- parsing (pure) ----------------------------------------------------------------------------


def parse_stat(text: str) -> list[StatRow]:
    """`show stat` CSV (its header starts with `# `) as rows; unreadable numbers read as 0."""
    body = text[2:] if text.startswith("# ") else text
    rows = []
    for row in csv.DictReader(io.StringIO(body)):
        proxy, server = (row.get("pxname") or "").strip(), (row.get("svname") or "").strip()
        if not proxy or not server:
            continue
        slim = _int(row.get("slim"))
        rows.append(
            StatRow(
                proxy=proxy,
                server=server,
                status=(row.get("status") or "").strip(),
                scur=_int(row.get("scur")),
                qcur=_int(row.get("qcur")),
                slim=slim or None,
                active=_int(row.get("act")),
                total=_int(row.get("stot")),
            )
        )
    return rows


def parse_servers_state(text: str) -> list[ServerState]:
    """`show servers state`: a version line, a `# ` header naming the columns, then one line
    of space-separated fields per server."""
    header: list[str] = []
    servers = []
    for line in text.splitlines():
        if line.startswith("# "):
            header = line[2:].split()
            continue
        fields = line.split()
        if not header or len(fields) < len(header):
            continue
        row = dict(zip(header, fields, strict=False))
        servers.append(
            ServerState(
                backend=row["be_name"],
                name=row["srv_name"],
                address=row["srv_addr"],
                port=_int(row.get("srv_port")),
                op_state=_int(row.get("srv_op_state")),
                admin_state=_int(row.get("srv_admin_state")),
                weight=_int(row.get("srv_uweight")),
            )
        )
    return servers


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        size += len(data)
        if size > _MAX_ANSWER:
            raise OSError(f"answered more than {_MAX_ANSWER} bytes")


def _word(text: str) -> str:
    """A CLI argument: HAProxy splits on spaces, and `;` ends a command."""
    if not text or any(c.isspace() or c in ";\\'\"#" for c in text) or not text.isprintable():
        raise ValueError(f"not a safe HAProxy CLI word: {text!r}")
    return text


def _server(backend: str, name: str) -> str:
    return f"{_word(backend)}/{_word(name)}"


def _addr(address: str) -> str:
    return _word(address.strip("[]"))
