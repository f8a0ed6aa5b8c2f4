"""Moving a running HAProxy's servers to the rendered ones through its runtime API, without a
reload. No Docker here: any engine that reaches the ingress's admin socket uses it.

One `sync` is level-triggered, from what HAProxy reports (`show servers state`), not from what
was sent before:
1. every wanted server is there, in rotation: `add server`, `enable health`, `enable server`
   (added before anything leaves, so a replacement never leaves a backend empty);
2. every other server of our backends leaves rotation: `set server ... state drain` (no new
   request reaches it on any connection, reused or not; requests on it finish);
3. the result is read back: a wanted server missing or not ready, or an unwanted one still in
   rotation, raises AdminError, so the caller drains nothing while it may still be routed;
4. a drained server with nothing running and nothing queued (`scur` and `qcur` 0, as Ray's
   `can_drain_safely`) goes to maintenance and is deleted; the others are left for the next sync.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from reconciler.model import IngressConfig, IngressServer
from reconciler.runtime.haproxy_admin import SERVERS, AdminError, HaproxyAdmin, ServerState

Key = tuple[str, str]


@dataclass(frozen=True)
class SyncResult:
    added: int = 0
    drained: int = 0
    deleted: int = 0
    leaving: int = 0  # drained servers still serving requests: deleted by a later sync

    @property
    def changed(self) -> bool:
        return bool(self.added or self.drained or self.deleted)


def runtime_can_follow(old: IngressConfig, new: IngressConfig) -> bool:
    """Only servers came or went: the same skeleton and files, and no server kept under its
    name with other keywords (those need a reload)."""
    if (old.skeleton, old.files, old.backends) != (new.skeleton, new.files, new.backends):
        return False
    before = {s.key: s.options for s in old.servers}
    return all(before.get(s.key, s.options) == s.options for s in new.servers)


def sync(
    admin: HaproxyAdmin, wanted: Sequence[IngressServer], backends: Collection[str]
) -> SyncResult:
    """Make `admin`'s servers in `backends` exactly `wanted` (see the module doc)."""
    want = {s.key: s for s in wanted}
    present = _ours(admin.show_servers_state(), backends)
    added = 0
    for key, server in want.items():
        state = present.get(key)
        if state is None:
            _add(admin, server)
            added += 1
        elif (state.address, state.port) != (server.address, server.port):
            admin.set_server_addr(*key, server.address, server.port)
            admin.set_server_state(*key, "ready")
        elif not state.ready:
            admin.set_server_state(*key, "ready")
    drained = 0
    for key, state in present.items():
        if key not in want and state.ready:
            admin.set_server_state(*key, "drain")
            drained += 1
    after = _ours(admin.show_servers_state(), backends)
    _confirm(after, want)
    leaving = {k: s for k, s in after.items() if k not in want}
    deleted = remove_idle(admin, leaving) if leaving else 0
    return SyncResult(added, drained, deleted, len(leaving) - deleted)


def remove_idle(admin: HaproxyAdmin, leaving: dict[Key, ServerState]) -> int:
    """Delete the servers of `leaving` that run and queue nothing; how many went."""
    busy = {
        (row.proxy, row.server)
        for row in admin.show_stat(SERVERS)
        if row.in_flight and (row.proxy, row.server) in leaving
    }
    deleted = 0
    for key in leaving.keys() - busy:
        try:
            if not leaving[key].in_maintenance:
                admin.set_server_state(*key, "maint")
            admin.del_server(*key)
        except AdminError:
            continue  # a request arrived in between, or a connection lingers: next time
        deleted += 1
    return deleted


def _add(admin: HaproxyAdmin, server: IngressServer) -> None:
    admin.add_server(*server.key, server.address, server.port, server.options)
    if "check" in server.options:
        admin.enable_health(*server.key)
    admin.enable_server(*server.key)


def _ours(states: Sequence[ServerState], backends: Collection[str]) -> dict[Key, ServerState]:
    return {(s.backend, s.name): s for s in states if s.backend in backends}


def _confirm(after: dict[Key, ServerState], want: dict[Key, IngressServer]) -> None:
    missing = [f"{b}/{n}" for (b, n), s in want.items() if not _in_rotation(after.get((b, n)), s)]
    routed = [f"{b}/{n}" for (b, n), s in after.items() if (b, n) not in want and s.ready]
    if missing or routed:
        parts = []
        if missing:
            parts.append(f"servers not in rotation: {', '.join(sorted(missing))}")
        if routed:
            parts.append(f"servers still in rotation: {', '.join(sorted(routed))}")
        raise AdminError("the ingress did not take the change; " + "; ".join(parts))


def _in_rotation(state: ServerState | None, server: IngressServer) -> bool:
    return (
        state is not None
        and state.ready
        and (state.address, state.port) == (server.address, server.port)
    )


def in_flight_by_server(admin: HaproxyAdmin) -> dict[str, int]:
    """Requests running or queued per server, keyed by the server's name."""
    return {row.server: row.in_flight for row in admin.show_stat(SERVERS) if row.is_server}
