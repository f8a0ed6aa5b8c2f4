"""`reconciler up` (Serve's `serve run`: apply a working tree in the foreground, no git) and
`reconciler down` (remove what an instance owns)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reconciler.cli.common import (
    add_engine_flags,
    add_logging_flag,
    engine_settings,
    fail,
    setup_logging,
)


def register(sub: Any) -> None:
    up: argparse.ArgumentParser = sub.add_parser(
        "up",
        help="apply a config from a working tree, in the foreground (like `serve run`)",
        description=(
            "Apply CONFIG from the working tree to Docker and follow it: edits to the config or "
            "the code are applied as you save. Ctrl-C removes everything this run started. "
            "With --detach, return once every application is RUNNING and leave it running "
            "(remove it later with `reconciler down`)."
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
        default=300.0,
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
    from reconciler import app
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
        return app.run_up(
            root, relative, engine_settings(args), detach=args.detach, timeout_s=args.timeout
        )
    except ReconcilerError as exc:
        return fail(str(exc), 3)


def run_down(args: argparse.Namespace) -> int:
    from reconciler import app
    from reconciler.errors import ReconcilerError

    setup_logging(args.log_level)
    try:
        return app.run_down(engine_settings(args))
    except ReconcilerError as exc:
        return fail(str(exc), 3)
