"""The replica's settings, read once from the environment the engine passes (see package doc),
and the control token from the file it names."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Settings:
    app: str
    deployment: str
    replica: int
    import_path: str
    args: dict[str, Any]
    user_config: Any
    user_config_hash: str
    max_ongoing_requests: int
    wait_loop_s: float
    shutdown_timeout_s: float
    health_check_timeout_s: float
    router_url: str
    port: int
    state_dir: str
    control_token: str = ""  # "" : the control endpoints answer anyone who reaches them

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            app=env.get("SERVE_APP", "default"),
            deployment=env["SERVE_DEPLOYMENT"],
            replica=int(env.get("SERVE_REPLICA", "0")),
            import_path=env["SERVE_IMPORT_PATH"],
            args=json.loads(env.get("SERVE_ARGS") or "{}"),
            user_config=json.loads(env.get("SERVE_USER_CONFIG") or "null"),
            user_config_hash=env.get("SERVE_USER_CONFIG_HASH", ""),
            max_ongoing_requests=max(1, int(env.get("SERVE_MAX_ONGOING_REQUESTS", "5"))),
            wait_loop_s=float(env.get("SERVE_GRACEFUL_SHUTDOWN_WAIT_LOOP_S", "2")),
            shutdown_timeout_s=float(env.get("SERVE_GRACEFUL_SHUTDOWN_TIMEOUT_S", "20")),
            health_check_timeout_s=float(env.get("SERVE_HEALTH_CHECK_TIMEOUT_S", "30")),
            router_url=env.get("SERVE_ROUTER_URL", "http://127.0.0.1:8001").rstrip("/"),
            port=int(env.get("SERVE_HTTP_PORT", "8000")),
            state_dir=env.get("SERVE_STATE_DIR", "/tmp/serve-state"),
            control_token=read_token(env.get("SERVE_CONTROL_TOKEN_FILE", "")),
        )


def read_token(path: str) -> str:
    """The token a file holds (one line), or "" when no file is named. A named file that cannot
    be read is an error: a replica that should check the token must never run without it."""
    if not path:
        return ""
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        raise ValueError(f"the control token file {path} is empty")
    return token
