"""`reconciler run`'s flags for who may change things and what the git host is told: the API
token (pin, unpin, rollback), the dashboard's address, and the commit statuses."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.cli.common import env_default
from reconciler.settings import CommitStatusSettings

SUPPORTED_HOSTS = "GitHub (github.com, GitHub Enterprise) and Gitea/Forgejo"


@dataclass(frozen=True)
class Access:
    api_token: str | None
    dashboard_url: str
    commit_status: CommitStatusSettings | None


def add_access_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Dashboard, pin and rollback, commit status")
    group.add_argument(
        "--api-token-file",
        default=env_default("API_TOKEN_FILE"),
        metavar="PATH",
        help="file holding the API token that pin, unpin and rollback (API, dashboard, command "
        "line) require; without one they are off [RECONCILER_API_TOKEN_FILE]",
    )
    group.add_argument(
        "--dashboard-url",
        default=env_default("DASHBOARD_URL"),
        metavar="URL",
        help="where people reach the dashboard, linked from commit statuses "
        "[RECONCILER_DASHBOARD_URL, default: http://LISTEN/]",
    )
    group.add_argument(
        "--commit-status-url",
        default=env_default("COMMIT_STATUS_URL"),
        metavar="URL",
        help="the repository's API, e.g. https://api.github.com/repos/OWNER/REPO or "
        "https://gitea.example/api/v1/repos/OWNER/REPO (default: derived from --repo); "
        f"{SUPPORTED_HOSTS} [RECONCILER_COMMIT_STATUS_URL]",
    )
    group.add_argument(
        "--commit-status-token-file",
        default=env_default("COMMIT_STATUS_TOKEN_FILE"),
        metavar="PATH",
        help="file holding a token that may post commit statuses (or set "
        "RECONCILER_COMMIT_STATUS_TOKEN); commit statuses are off without one "
        "[RECONCILER_COMMIT_STATUS_TOKEN_FILE]",
    )
    group.add_argument(
        "--commit-status-context",
        default=env_default("COMMIT_STATUS_CONTEXT"),
        metavar="NAME",
        help="the status's name on the commit [RECONCILER_COMMIT_STATUS_CONTEXT, default: "
        "serve-reconciler/INSTANCE]",
    )


def _secret(path: str | None, what: str) -> str | None:
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not value:
        raise ValueError(f"{what} {path} is empty")
    return value


def access(args: argparse.Namespace, listen: tuple[str, int]) -> Access:
    """The flags as settings; ValueError with a message for a bad combination."""
    from reconciler.commitstatus import api_url_for

    host, port = listen
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    dashboard = args.dashboard_url or f"http://{shown}:{port}/"
    token = _secret(args.api_token_file, "--api-token-file")
    status_token = _secret(args.commit_status_token_file, "--commit-status-token-file") or (
        os.environ.get("RECONCILER_COMMIT_STATUS_TOKEN") or None
    )
    if status_token is None:
        if args.commit_status_url:
            raise ValueError(
                "--commit-status-url needs a token: --commit-status-token-file FILE "
                "(or RECONCILER_COMMIT_STATUS_TOKEN)"
            )
        return Access(token, dashboard, None)
    url = (args.commit_status_url or api_url_for(args.repo or "") or "").rstrip("/")
    if not url.startswith(("https://", "http://")):
        raise ValueError(
            f"cannot tell the git host's API from --repo {args.repo!r}: pass --commit-status-url "
            f"https://api.github.com/repos/OWNER/REPO (supported: {SUPPORTED_HOSTS})"
        )
    context = args.commit_status_context or f"serve-reconciler/{args.instance}"
    status = CommitStatusSettings(url, status_token, context, dashboard)
    return Access(token, dashboard, status)
