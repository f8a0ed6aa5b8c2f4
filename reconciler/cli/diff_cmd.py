"""`reconciler diff BASE [HEAD]`: what merging HEAD would do to the running deployments.

Both revisions are exported from the local git checkout and loaded with the same loader the daemon
uses; the comparison is the planner's own `diff_configs`, so the preview and the deploy agree.
Exit 0 when nothing would change, 1 when something would, 2 when HEAD's config is invalid or a
revision cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.cli.common import env_default, fail
from reconciler.cli.sandbox_opt import LazySandbox
from reconciler.settings import DEFAULT_IMAGE, Exit

if TYPE_CHECKING:
    from reconciler.plan import DeploymentChange

VERBS = {
    "create": "create",
    "remove": "remove",
    "scale": "scale",
    "reconfigure": "reconfigure in place",
    "restart": "rolling restart",
    "unchanged": "unchanged",
}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "diff",
        help="show what a change between two revisions would do to the deployments",
        description=(
            "Compare the Serve config at BASE with the one at HEAD (default: HEAD) in the git "
            "checkout and say, per application and deployment, what merging HEAD would do: "
            "create, remove, scale N->M, reconfigure in place, or a rolling restart (and why). "
            "Exit 0 when nothing changes, 1 when something does, 2 on an error."
        ),
    )
    p.add_argument("base", help="base revision, e.g. origin/main")
    p.add_argument("head", nargs="?", default="HEAD", help="head revision (default: HEAD)")
    p.add_argument(
        "--config",
        default="serve_config.yaml",
        help="config path in the repository (default: %(default)s)",
    )
    p.add_argument("-C", "--repo", default=".", help="the git checkout (default: .)")
    p.add_argument(
        "--format",
        choices=["text", "json", "markdown"],
        default="text",
        help="text, json, or markdown (for a pull-request comment) (default: text)",
    )
    p.add_argument("--all", action="store_true", help="also list unchanged deployments")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler import plan, spec
    from reconciler.errors import ConfigError, ReconcilerError
    from reconciler.runtime.remote_code import CodeFetcher, default_cache_dir
    from reconciler.source import export_revision

    # Code that reading cannot decide is built in a sandbox, as the daemon builds it.
    image = env_default("DEFAULT_IMAGE", DEFAULT_IMAGE) or DEFAULT_IMAGE
    sandbox = LazySandbox(default_image=image)
    fetch = CodeFetcher(default_cache_dir())  # remote working_dir zips, as the daemon fetches
    with tempfile.TemporaryDirectory(prefix="reconciler-diff-") as tmp:
        try:
            base_id = export_revision(Path(args.repo), args.base, Path(tmp) / "base")
            head_id = export_revision(Path(args.repo), args.head, Path(tmp) / "head")
        except ReconcilerError as exc:
            return fail(str(exc))
        try:
            head = spec.load_config(
                Path(tmp) / "head", args.config, graph_builder=sandbox, default_image=image,
                fetch=fetch,
            )  # fmt: skip
        except ConfigError as exc:
            print(
                f"{args.head}: the config is invalid, nothing would be deployed:", file=sys.stderr
            )
            print(str(exc), file=sys.stderr)
            return int(Exit.USAGE)
        except ReconcilerError as exc:  # no sandbox could run, or a remote zip could not be had
            return fail(f"{args.head}: cannot read the code: {exc}")
        try:
            base = spec.load_config(
                Path(tmp) / "base", args.config, graph_builder=sandbox, default_image=image,
                fetch=fetch,
            )  # fmt: skip
        except ReconcilerError:
            base = None  # a first deploy, or a base that was itself broken: everything is new
    changes = plan.diff_configs(base, head)
    changed = [c for c in changes if c.kind != "unchanged" or c.reasons]
    shown = changes if args.all else changed
    header = f"{args.base} ({base_id[:12]}) -> {args.head} ({head_id[:12]}), {args.config}"
    print(_render(args.format, header, shown, len(changed)))
    moved = any(c.kind != "unchanged" for c in changes)
    return int(Exit.INVALID if moved else Exit.OK)


def _what(change: DeploymentChange) -> str:
    verb: str = VERBS.get(change.kind, change.kind)
    if change.scaling is not None:  # autoscaled on either side: bounds, not a replica count
        before, after = change.scaling
        if change.kind == "create":
            return f"create ({after})"
        if change.kind == "scale":
            return f"{verb}: {before} -> {after}" if before != after else verb
        return verb
    if change.kind == "scale" or (
        change.kind == "restart" and change.from_replicas != change.to_replicas
    ):
        return f"{verb} {change.from_replicas} -> {change.to_replicas}"
    if change.kind == "create":
        return f"create ({change.to_replicas} replica{'s' if change.to_replicas != 1 else ''})"
    if change.kind == "remove":
        return f"remove ({change.from_replicas} replica{'s' if change.from_replicas != 1 else ''})"
    return verb


def _render(fmt: str, header: str, changes: list[DeploymentChange], count: int) -> str:
    if fmt == "json":
        return json.dumps(
            [
                {
                    "application": c.app,
                    "deployment": c.deployment,
                    "change": c.kind,
                    "from_replicas": c.from_replicas,
                    "to_replicas": c.to_replicas,
                    "reasons": list(c.reasons),
                }
                for c in changes
            ],
            indent=2,
        )
    if fmt == "markdown":
        rows = ["| application | deployment | change | why |", "|---|---|---|---|"]
        rows += [
            f"| {c.app} | {c.deployment} | {_what(c)} | {'; '.join(c.reasons)} |" for c in changes
        ]
        return f"**reconciler diff** {header}\n\n" + ("\n".join(rows) if changes else "No change.")
    lines = [header]
    for app in dict.fromkeys(c.app for c in changes):
        lines.append(f"application {app}:")
        for c in (c for c in changes if c.app == app):
            why = f"  ({'; '.join(c.reasons)})" if c.reasons else ""
            lines.append(f"  {c.deployment}: {_what(c)}{why}")
    lines.append(
        f"{count} deployment{'s' if count != 1 else ''} would change." if count else "No change."
    )
    return "\n".join(lines)
