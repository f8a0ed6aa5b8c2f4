"""Confirming an HAProxy reload: the ingress answers `INGRESS_VERSION_PATH` with the version of the
config it serves, so the engine can tell when a reload has taken effect (no Docker here: plain
HTTP to the ingress's published port, and a callback that resends the reload signal).

HAProxy's master drops a SIGUSR2 that arrives while it is still finishing the previous reload
(seen in about 1 of 20 back-to-back reloads: the old config stayed in force until the next
change), so the signal is sent again while the new version is not served. Reloading the same
file twice is harmless.
"""

from __future__ import annotations

import io
import logging
import tarfile
import time
from collections.abc import Callable, Sequence

from reconciler.errors import EngineError
from reconciler.model import INGRESS_VERSION_PATH, HttpOptions
from reconciler.runtime.control import ingress_version, local_address
from reconciler.runtime.haproxy_admin import HaproxyAdmin

log = logging.getLogger(__name__)

RELOAD_WAIT_S = 5.0
RESEND_S = 0.5  # no new version served after this long: the reload signal was lost


def await_version(
    http: HttpOptions, version: str, resend: Callable[[], None] | None, ingress_name: str
) -> None:
    """Return once the ingress serves `version`. Raise EngineError when it keeps answering an
    older version (the reload did not take); carry on with a warning when it does not answer at
    all here (a remote engine whose published ports this host cannot reach)."""
    host = local_address(http.host)
    now = time.monotonic()
    deadline, resend_at = now + RELOAD_WAIT_S, now + RESEND_S
    served: str | None = None
    while time.monotonic() < deadline:
        served = ingress_version(host, http.port, INGRESS_VERSION_PATH)
        if served == version:
            return
        if resend is not None and time.monotonic() >= resend_at:
            resend_at = time.monotonic() + RESEND_S
            resend()
        time.sleep(0.02)
    if served is not None:
        # The caller keeps the replicas it meant to drain in service; the next pass retries.
        raise EngineError(
            f"the ingress still serves config {served} {RELOAD_WAIT_S:.0f}s after a reload to "
            f"{version}; see `docker logs {ingress_name}`"
        )
    log.warning("the ingress did not confirm config %s within %.0fs", version, RELOAD_WAIT_S)


def await_listening(
    admin: HaproxyAdmin | None, exited: Callable[[], str | None], ingress_name: str
) -> None:
    """Return once a freshly started ingress answers on its runtime API (HAProxy has bound every
    listener by then). EngineError with HAProxy's own words when it stopped instead: a port
    taken or refused (an ingress in the host's network binds its ports itself). Without an
    answer either way within RELOAD_WAIT_S, return: await_version says what it can."""
    if admin is None:
        return  # a config without a runtime API: await_version is all there is
    deadline = time.monotonic() + RELOAD_WAIT_S
    while time.monotonic() < deadline:
        try:
            if admin.show_info():
                return
        except EngineError:
            pass  # not listening yet
        said = exited()
        if said is not None:
            alerts = [line.strip() for line in said.splitlines() if "ALERT" in line]
            raise EngineError(
                f"the ingress {ingress_name} stopped as it started: "
                f"{'; '.join(alerts) or said or 'no log'}"
            )
        time.sleep(0.05)


def config_tar(cfg: str, files: Sequence[tuple[str, str]] = ()) -> bytes:
    """A tar holding `serve.cfg` and the files it names, for put_archive into the ingress's
    config directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, text in (*files, ("serve.cfg", cfg)):  # the config last: it names the others
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_config_tar(data: bytes) -> str:
    """The text of the first file in a tar (`get_archive` of the ingress's config)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                return extracted.read().decode("utf-8", "replace")
    return ""
