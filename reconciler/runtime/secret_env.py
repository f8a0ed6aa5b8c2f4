"""Secret env values (`secret: true`, `from_env`) reach a replica through a file, not through the
container's `Env`: `docker inspect`, and every dashboard or support bundle built on it, shows
`Env` to anyone who can read the engine's API.

The file is JSON (name -> value), owned by the replica's user and readable by it alone, copied in
before the container starts; the replica runtime loads it into its environment before it imports
the user's code (`SERVE_SECRET_ENV_FILE` says where it is). The instance's call token, where the
engine has one (runtime/ingress_network.py), goes beside it (`SERVE_CALL_TOKEN_FILE`).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import tarfile
from collections.abc import Callable
from pathlib import Path

from reconciler.model import DeploymentSpec

SECRET_DIR = "run/serve-secrets"
SECRET_ENV_FILE = f"/{SECRET_DIR}/env.json"
CALL_TOKEN_FILE = f"/{SECRET_DIR}/call-token"
_OWNER = 65534  # the replica's user (containers.USER)


def split_env(spec: DeploymentSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) env values of a deployment."""
    plain = {k: v for k, v in spec.env if k not in spec.secret_env}
    secret = {k: v for k, v in spec.env if k in spec.secret_env}
    return plain, secret


def secret_env_tar(secret: dict[str, str], call_token: str = "") -> bytes:
    """A tar for put_archive at `/`: the directory (0700) and its files (0400), the replica's
    own: the secret env values (if any) and the call token (if given)."""
    files = []
    if secret:
        files.append((SECRET_ENV_FILE, json.dumps(secret, sort_keys=True).encode("utf-8")))
    if call_token:
        files.append((CALL_TOKEN_FILE, call_token.encode("ascii") + b"\n"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo(SECRET_DIR)
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o700, _OWNER, _OWNER
        tar.addfile(folder)
        for path, data in files:
            file = tarfile.TarInfo(path.lstrip("/"))
            file.size, file.mode, file.uid, file.gid = len(data), 0o400, _OWNER, _OWNER
            tar.addfile(file, io.BytesIO(data))
    return buffer.getvalue()


def load_token(path: Path, adopt: Callable[[], str] | None = None) -> str:
    """A token kept in `path`. When absent: the one `adopt` finds (what running containers
    already hold), else a new one; written there (0600) either way."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if token:
        return token
    token = (adopt() if adopt is not None else "") or secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote one first: that one holds
        written = path.read_text(encoding="utf-8").strip()
        if written:
            return written
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # left empty by a writer that died
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def token_from_tar(data: bytes) -> str:
    """The token in the first file of a tar (what `get_archive` of CALL_TOKEN_FILE gives)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            if member.isfile():
                extracted = tar.extractfile(member)
                return extracted.read().decode("ascii", "replace").strip() if extracted else ""
    return ""
