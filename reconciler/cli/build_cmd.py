"""`reconciler build MODULE:ATTR`: Serve's `serve build`. Reads the code (never runs it) and
writes a config listing every deployment of the application with its options spelled out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from reconciler.cli.common import fail
from reconciler.settings import Exit


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "build",
        help="write a config from the code's deployments (like `serve build`)",
        description=(
            "Read the application that MODULE:ATTR names (the code is parsed, never run) and "
            "write a Serve config with every deployment and its options spelled out: the "
            "code's values, else Serve's defaults. The result validates; edit and commit it."
        ),
    )
    p.add_argument(
        "import_path",
        metavar="MODULE:ATTR",
        help="the bound application, e.g. fruit:deployment_graph",
    )
    p.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="directory holding the code; the config is meant to sit at its top (default: .)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--multi-app",
        action="store_true",
        help="write the multi-application shape (applications: [...])",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.errors import ConfigError
    from reconciler.spec.build import build_config

    app_dir = Path(args.app_dir)
    if not app_dir.is_dir():
        return fail(f"--app-dir {args.app_dir}: no such directory")
    name = Path(args.output).name if args.output else "serve_config.yaml"
    try:
        text = build_config(args.import_path, app_dir, multi_app=args.multi_app, config_name=name)
    except ConfigError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return int(Exit.INVALID)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return int(Exit.OK)
