"""Secret env values (`secret: true`, `from_env`) reach a replica through a file, not through the
container's `Env`: `docker inspect`, and every dashboard or support bundle built on it, shows
`Env` to anyone who can read the engine's API.

The file is JSON (name -> value), owned by the replica's user and readable by it alone, copied in
before the container starts; the replica runtime loads it into its environment before it imports
the user's code (`SERVE_SECRET_ENV_FILE` says where it is).
"""

from __future__ import annotations

import io
import json
import tarfile

from reconciler.model import DeploymentSpec

SECRET_DIR = "run/serve-secrets"
SECRET_ENV_FILE = f"/{SECRET_DIR}/env.json"
_OWNER = 65534  # the replica's user (containers.USER)


def split_env(spec: DeploymentSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) env values of a deployment."""
    plain = {k: v for k, v in spec.env if k not in spec.secret_env}
    secret = {k: v for k, v in spec.env if k in spec.secret_env}
    return plain, secret


def secret_env_tar(secret: dict[str, str]) -> bytes:
    """A tar for put_archive at `/`: the directory (0700) and the file (0400), the replica's own."""
    data = json.dumps(secret, sort_keys=True).encode("utf-8")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo(SECRET_DIR)
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o700, _OWNER, _OWNER
        tar.addfile(folder)
        file = tarfile.TarInfo(SECRET_ENV_FILE.lstrip("/"))
        file.size, file.mode, file.uid, file.gid = len(data), 0o400, _OWNER, _OWNER
        tar.addfile(file, io.BytesIO(data))
    return buffer.getvalue()
