"""`reconciler run`: the daemon that makes a Docker host follow one branch of a git repository."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from reconciler.cli.access_flags import access, add_access_flags
from reconciler.cli.common import (
    EXIT_FOR,
    add_engine_flags,
    add_logging_flag,
    engine_settings,
    env_default,
    fail,
    setup_logging,
)
from reconciler.cli.priority import set_priority
from reconciler.reconcile.converge import Verdict
from reconciler.settings import (
    DEFAULT_BRANCH,
    DEFAULT_CONFIG,
    DEFAULT_GIT_TIMEOUT_S,
    DEFAULT_LISTEN,
    DEFAULT_ONCE_TIMEOUT_S,
    DEFAULT_POLL_INTERVAL_S,
    MIN_POLL_INTERVAL_S,
    DaemonSettings,
    Exit,
)

# The API's threads share the GIL with the pass, the container starts and the health checks.
# Python hands the GIL to a waiting thread every 5 ms by default, so a request behind busy threads
# waits in 5 ms steps; at 1 ms it waits less. (Measured while the daemon shared its session with
# dockerd, where the tail was mostly the CPU scheduler's, see cli/priority.py: p99 39-69 ms
# against 29-73 ms at 500 GET /status a second during a 100-replica rollout; a small gain.)
GIL_SWITCH_INTERVAL_S = 0.001


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="watch a git branch and keep Docker in step with it (the daemon)",
        description=(
            "Watch one branch of a git repository and make the Docker host run what its Serve "
            "config says. A pushed commit is the deploy; an invalid commit is refused while the "
            "last good one keeps running. Stops on SIGTERM/Ctrl-C; replicas keep running and a "
            "restarted daemon adopts them."
        ),
    )
    p.add_argument(
        "--repo",
        default=env_default("REPO"),
        metavar="URL",
        help="repository URL: a path, file://, ssh:// or https:// (credentials from "
        "RECONCILER_GIT_* variables, never in the URL) [RECONCILER_REPO]",
    )
    p.add_argument(
        "--branch",
        default=env_default("BRANCH", DEFAULT_BRANCH),
        help="the branch to follow [RECONCILER_BRANCH, default: %(default)s]",
    )
    p.add_argument(
        "--config",
        default=env_default("CONFIG", DEFAULT_CONFIG),
        metavar="PATH",
        help="path of the Serve config inside the repository "
        "[RECONCILER_CONFIG, default: %(default)s]",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=float(env_default("POLL_INTERVAL", "") or DEFAULT_POLL_INTERVAL_S),
        metavar="SECONDS",
        help="seconds between polls (minimum 1; a webhook triggers a pass at once) "
        "[RECONCILER_POLL_INTERVAL, default: %(default)s]",
    )
    p.add_argument(
        "--state-dir",
        default=env_default("STATE_DIR"),
        metavar="DIR",
        help="where the clone and the state database live "
        "[RECONCILER_STATE_DIR, default: ~/.local/state/serve-reconciler/INSTANCE]",
    )
    p.add_argument(
        "--listen",
        default=env_default("LISTEN", DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help="address of the HTTP API [RECONCILER_LISTEN, default: %(default)s]",
    )
    p.add_argument(
        "--webhook-secret-file",
        default=env_default("WEBHOOK_SECRET_FILE"),
        metavar="PATH",
        help="file holding the webhook's shared secret (or set RECONCILER_WEBHOOK_SECRET); "
        "without one POST /webhook is off",
    )
    p.add_argument(
        "--git-timeout",
        type=float,
        default=float(env_default("GIT_TIMEOUT", "") or DEFAULT_GIT_TIMEOUT_S),
        metavar="SECONDS",
        help="bound on every git network operation [RECONCILER_GIT_TIMEOUT, default: %(default)s]",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=int(env_default("NICE", "0") or 0),
        metavar="N",
        help="CPU priority of the daemon, -20 (highest) to 19. On a small host a negative value "
        "(needs root or CAP_SYS_NICE) keeps the API and the loop responsive while replicas "
        "start [RECONCILER_NICE, default: %(default)s]",
    )
    p.add_argument(
        "--max-parallel-starts",
        type=int,
        default=int(env_default("MAX_PARALLEL_STARTS", "0") or 0),
        metavar="N",
        help="container starts and removals in flight at once (0: twice the host's cores, 2 to "
        "8); fewer keeps the API quicker on a small host while a rollout runs "
        "[RECONCILER_MAX_PARALLEL_STARTS, default: 0]",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="reconcile until converged, then exit: 0 running, 1 invalid config (or one the "
        "host cannot hold), 3 git or Docker unreachable, 4 not converged in time (for cron "
        "and CI)",
    )
    p.add_argument(
        "--once-timeout",
        type=float,
        default=DEFAULT_ONCE_TIMEOUT_S,
        metavar="SECONDS",
        help="give up --once after this long (default: %(default)s)",
    )
    add_engine_flags(p)
    add_access_flags(p)
    add_logging_flag(p)
    p.set_defaults(handler=run)


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _webhook_secret(path: str | None) -> str | None:
    if path:
        secret = Path(path).read_text(encoding="utf-8").strip()
        return secret or None
    return os.environ.get("RECONCILER_WEBHOOK_SECRET") or None


def run(args: argparse.Namespace) -> int:
    from reconciler.app.daemon import build_daemon
    from reconciler.errors import ReconcilerError

    setup_logging(args.log_level)
    if not -20 <= args.nice <= 19:
        return fail(f"--nice must be from -20 to 19, got {args.nice}")
    if args.max_parallel_starts < 0:
        return fail(f"--max-parallel-starts must be 0 or more, got {args.max_parallel_starts}")
    set_priority(args.nice)  # first: every thread started later inherits it
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    if not args.repo:
        return fail("no repository: pass --repo URL or set RECONCILER_REPO")
    if args.poll_interval < MIN_POLL_INTERVAL_S:
        return fail(f"--poll-interval must be at least {MIN_POLL_INTERVAL_S:g} second")
    try:
        host, port = _listen(args.listen)
        secret = _webhook_secret(args.webhook_secret_file)
        engine = engine_settings(args)
        allowed = access(args, (host, port))
    except (ValueError, OSError) as exc:
        return fail(str(exc))
    state_dir = Path(
        args.state_dir or Path.home() / ".local/state/serve-reconciler" / args.instance
    )
    settings = DaemonSettings(
        repo=args.repo,
        branch=args.branch,
        config_path=args.config,
        poll_interval_s=args.poll_interval,
        state_dir=state_dir,
        listen_host=host,
        listen_port=port,
        webhook_secret=secret,
        git_timeout_s=args.git_timeout,
        max_parallel_starts=args.max_parallel_starts or None,
        engine=engine,
        api_token=allowed.api_token,
        dashboard_url=allowed.dashboard_url,
        commit_status=allowed.commit_status,
    )
    try:
        daemon = build_daemon(settings, background=not args.once)
    except ReconcilerError as exc:
        return fail(str(exc), Exit.INVALID)
    try:
        return _once(daemon, args.once_timeout) if args.once else _serve(daemon)
    finally:
        daemon.close()


# What --once says on its way out, by verdict: the log above holds the details.
_ONCE_OUTCOME = {
    Verdict.INVALID: "the config at the branch head is invalid; run `reconciler validate` in a "
    "checkout",
    Verdict.UNHOLDABLE: "the host cannot hold this config: replicas wait for room",
    Verdict.UNAVAILABLE: "gave up: git or Docker is unreachable",
    Verdict.NOT_CONVERGED: "gave up: not converged in time; `docker ps -a` and the log above "
    "say why",
}


def _once(daemon: Any, timeout_s: float) -> int:
    verdict = daemon.once(timeout_s)
    code = EXIT_FOR[verdict]
    if verdict in _ONCE_OUTCOME:
        fail(_ONCE_OUTCOME[verdict] + _cause(daemon.reconciler.snapshot), code)
    return int(code)


def _cause(snap: Any) -> str:
    pending = [d.message for a in snap.applications for d in a.deployments if d.pending_replicas]
    errors = "; ".join(snap.commits.errors[:3])
    cause = snap.loop.source_error or snap.loop.engine_error or errors or next(iter(pending), "")
    return f" ({cause})" if cause else ""


def _serve(daemon: Any) -> int:
    from reconciler.cli.signals import stop_on_signals

    settings = daemon.settings
    with stop_on_signals() as stop:
        try:
            daemon.serve(stop)
        except OSError as exc:
            where = f"{settings.listen_host}:{settings.listen_port}"
            return fail(
                f"cannot listen on {where}: {exc.strerror or exc}; pick another port with "
                "--listen HOST:PORT (or stop what uses it)",
                Exit.INVALID,
            )
    return int(Exit.OK)
