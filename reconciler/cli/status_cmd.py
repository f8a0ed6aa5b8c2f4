"""`reconciler status`: print the live status the way `serve status` does (YAML; one document per
application of a multi-application config, separated by `---`; `-n` selects one)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from reconciler.cli import serve_client
from reconciler.cli.serve_client import ClientError
from reconciler.settings import Exit

NO_APPLICATIONS = "There are no applications running on this reconciler."


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show the live status of the deployed applications",
        description="Print the status of the applications the reconciler runs, like `serve "
        "status`: application and deployment statuses, replica counts, and the applied, latest "
        "and attempted commits.",
    )
    serve_client.add_common_arguments(parser)
    parser.add_argument(
        "--format", choices=("yaml", "json"), default="yaml", help="output format (default: yaml)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    address = serve_client.resolve_address(args.address)
    try:
        body = serve_client.json_body(serve_client.get(address, "/status"), address)
        if not isinstance(body, dict):
            raise ClientError(f"the reconciler at {address} sent a status that is not an object")
        print(render(body, args.name, args.format), end="")
    except ClientError as exc:
        return serve_client.fail(str(exc))
    return int(Exit.OK)


def render(body: dict[str, Any], name: str | None, fmt: str) -> str:
    """The text to print for a `/status` body."""
    from reconciler.spec.yamlout import dump_yaml

    if "applications" not in body:
        single = serve_client.select([body], name)[0]
        return json.dumps(single, indent=2) + "\n" if fmt == "json" else dump_yaml(single)
    extras = {key: value for key, value in body.items() if key != "applications"}
    apps = serve_client.select(list(body["applications"]), name)
    if fmt == "json":
        return json.dumps({"applications": apps, **extras}, indent=2) + "\n"
    if not apps:
        return NO_APPLICATIONS + "\n"
    # Each document reads on its own, like the single-application shape.
    return "---\n".join(dump_yaml({**app, **extras}) for app in apps)
