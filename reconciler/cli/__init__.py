"""The `reconciler` command line: one module per subcommand, each with `register(subparsers)`.

Subcommand modules import their heavy dependencies (docker, flask, git) inside their handlers,
so that `reconciler validate`, the pull-request check, starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from reconciler import __version__
from reconciler.settings import Exit

# Order is the order of `reconciler --help`.
SUBCOMMANDS = ("run", "up", "validate", "diff", "build", "status", "config", "pin")
# `up_cmd` also registers `down`; `pin_cmd` also `unpin` and `rollback`.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description=(
            "Deploy Ray Serve-style applications onto Docker from a git repository. "
            "A pushed commit is the deploy."
        ),
        epilog="Run 'reconciler COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"reconciler.cli.{name}_cmd")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return int(Exit.USAGE)
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        return int(Exit.INTERRUPTED)
