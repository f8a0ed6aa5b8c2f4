"""`reconciler up` (Serve's `serve run`: apply a working tree in the foreground, no git) and
`reconciler down` (remove what an instance owns)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reconciler.cli.common import (
    EXIT_FOR,
    add_engine_flags,
    add_logging_flag,
    engine_settings,
    fail,
    setup_logging,
)
from reconciler.cli.printer import StatusPrinter
from reconciler.reconcile.converge import Verdict
from reconciler.settings import DEFAULT_UP_TIMEOUT_S, Exit


def register(sub: Any) -> None:
    up: argparse.ArgumentParser = sub.add_parser(
        "up",
        help="apply a config from a working tree, in the foreground (like `serve run`)",
        description=(
            "Apply CONFIG from the working tree to Docker and follow it: edits to the config or "
            "the code are applied as you save. Ctrl-C removes everything this run started. "
            "With --detach, return once every application is RUNNING and leave it running "
            "(remove it later with `reconciler down`); exit 1 at once when the config is "
            "invalid or the host cannot hold it, 4 when not RUNNING in time."
        ),
    )
    up.add_argument(
        "config",
        nargs="?",
        default="serve_config.yaml",
        help="the Serve config file (default: %(default)s)",
    )
    up.add_argument(
        "--root",
        help="repository root that relative paths in the config are "
        "resolved against (default: the config file's directory)",
    )
    up.add_argument(
        "-d",
        "--detach",
        action="store_true",
        help="return once RUNNING, leaving the replicas running",
    )
    up.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_UP_TIMEOUT_S,
        metavar="SECONDS",
        help="with --detach: give up after this long (default: %(default)s)",
    )
    add_engine_flags(up)
    add_logging_flag(up)
    up.set_defaults(handler=run_up)

    down: argparse.ArgumentParser = sub.add_parser(
        "down",
        help="remove every container, network and image an instance owns",
        description="Remove every container and network labelled with this instance's name "
        "(what `reconciler run` or `reconciler up --detach` left running), and the images it "
        "built for its deployments. Nothing else is touched.",
    )
    add_engine_flags(down, owner_only=True)
    add_logging_flag(down)
    down.set_defaults(handler=run_down)


def run_up(args: argparse.Namespace) -> int:
    from reconciler.app import up as app
    from reconciler.errors import ReconcilerError

    setup_logging(args.log_level)
    config = Path(args.config)
    if not config.is_file():
        return fail(f"{config}: no such file; pass the path of a Serve config file")
    root = Path(args.root) if args.root else config.resolve().parent
    try:
        relative = config.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return fail(f"{config} is not inside --root {root}")
    try:
        settings = engine_settings(args)
        up = app.build_up(root, relative, settings)
    except ValueError as exc:
        return fail(str(exc))
    except ReconcilerError as exc:
        return fail(str(exc), Exit.UNAVAILABLE)
    printer = StatusPrinter()
    try:
        return _detached(up, printer, args.timeout) if args.detach else _foreground(up, printer)
    except ReconcilerError as exc:
        return fail(str(exc), Exit.UNAVAILABLE)


def _detached(up: Any, printer: StatusPrinter, timeout_s: float) -> int:
    verdict = up.until_verdict(printer, timeout_s)
    if verdict is Verdict.NOT_CONVERGED:
        print(f"not RUNNING after {timeout_s:.0f}s; see the status above")
    elif verdict is Verdict.UNHOLDABLE:
        print("the host cannot hold this config: replicas wait for room (see the status above)")
    elif verdict is Verdict.INVALID:
        print("the config is invalid (see above); nothing was changed")
    return int(EXIT_FOR[verdict])


def _foreground(up: Any, printer: StatusPrinter) -> int:
    from reconciler.cli.signals import stop_on_signals

    verdict = None
    with stop_on_signals() as stop:
        try:
            verdict = up.follow(printer, stop)
        finally:
            print("removing the replicas and the ingress this run started...")
            up.remove()
            print("done")
    return int(EXIT_FOR[verdict]) if verdict is not None else int(Exit.OK)


def run_down(args: argparse.Namespace) -> int:
    from reconciler.app import up as app
    from reconciler.errors import ReconcilerError

    setup_logging(args.log_level)
    settings = engine_settings(args)
    try:
        app.run_down(settings)
    except ReconcilerError as exc:
        return fail(str(exc), Exit.UNAVAILABLE)
    print(f"removed everything owned by instance '{settings.instance}'")
    return int(Exit.OK)
