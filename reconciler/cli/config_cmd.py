"""`reconciler config`: print the applied commit's config the way `serve config` does (YAML; one
document per application of a multi-application config, separated by `---`; `-n` selects one),
headed by a `# commit <id>` comment."""

from __future__ import annotations

import argparse
from typing import Any

from reconciler.cli import serve_client
from reconciler.cli.serve_client import ClientError
from reconciler.settings import Exit


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config",
        help="show the config of the applied commit",
        description="Print the config the reconciler has applied, and its commit, like `serve "
        "config`.",
    )
    serve_client.add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    address = serve_client.resolve_address(args.address)
    try:
        response = serve_client.get(address, "/config")
        if response.status_code == 404:
            raise ClientError(_not_applied(response, address))
        body = serve_client.json_body(response, address)
        print(render(body, args.name), end="")
    except ClientError as exc:
        return serve_client.fail(str(exc))
    return int(Exit.OK)


def render(body: Any, name: str | None) -> str:
    """The text to print for a `/config` body {"commit": id, "config": document}."""
    from reconciler.spec.yamlout import dump_yaml

    if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
        raise ClientError("the reconciler sent a config answer without a config in it")
    config: dict[str, Any] = body["config"]
    header = f"# commit {body.get('commit')}\n"
    apps = config.get("applications")
    if not isinstance(apps, list):
        return header + dump_yaml(config)  # single-application config: the document as written
    chosen = serve_client.select([a for a in apps if isinstance(a, dict)], name)
    return header + "---\n".join(dump_yaml(app) for app in chosen)


def _not_applied(response: Any, address: str) -> str:
    message = f"no config has been applied yet by the reconciler at {address}"
    try:
        body = response.json()
    except ValueError:
        return message
    if isinstance(body, dict) and body.get("attempt_outcome") not in (None, "applied"):
        message += (
            f"; the last attempt (commit {body.get('attempted_commit')}) was "
            f"{body.get('attempt_outcome')}: see `reconciler status`"
        )
    return message
