"""`reconciler validate [PATH...]`: the pull-request check. Validates config files, or the
configs of a repository checkout, against the schema and the code; exit 0 valid (warnings
allowed), 1 invalid, 2 usage error. Output as text, JSON, or GitHub Actions annotations (errors
as `::error`, warnings as `::warning`). Code that reading cannot decide is built in a sandbox
container where a Docker engine answers; without one that is a warning, not a refusal."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.cli.common import env_default, fail
from reconciler.cli.sandbox_opt import LazySandbox
from reconciler.settings import DEFAULT_IMAGE

if TYPE_CHECKING:
    from reconciler.errors import ConfigIssue

Result = tuple[str, "list[ConfigIssue]"]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "validate",
        help="check Serve config files (the pull-request check)",
        description=(
            "Validate Serve config files against the JSON Schema and the code they name. The "
            "code is read, never run on this machine; what reading cannot decide (application "
            "builders, options held in variables) is decided by importing it in a sandbox "
            "container (no network, read-only, capped CPU, memory and time) where a Docker "
            "engine answers, and is a warning otherwise. A PATH may be a config file or a "
            "repository checkout, whose configs are found by name: serve_config.yaml, and "
            "*config*.yaml files with an import_path or applications key. Exit 0 when every "
            "config is valid (warnings allowed), 1 when one is not, 2 on a usage error."
        ),
    )
    p.add_argument(
        "paths",
        nargs="*",
        default=["."],
        metavar="PATH",
        help="config files or repository checkouts (default: .)",
    )
    p.add_argument(
        "--format",
        choices=["text", "json", "github"],
        default="text",
        help="text (file:line:col: message), json, or github (CI annotations)",
    )
    p.add_argument(
        "--root",
        metavar="DIR",
        help="repository root for file arguments: code paths in the config are "
        "relative to it (default: the enclosing git checkout, else the file's "
        "directory)",
    )
    p.add_argument(
        "--config",
        action="append",
        metavar="REL",
        help="config path inside a checkout argument, instead of finding configs by "
        "name (repeatable)",
    )
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help="never start a sandbox container: code that reading cannot decide is a warning",
    )
    p.add_argument(
        "--default-image",
        default=env_default("DEFAULT_IMAGE", DEFAULT_IMAGE),
        metavar="IMAGE",
        help="the image deployments without runtime_env.image_uri run (the daemon's "
        "--default-image) [RECONCILER_DEFAULT_IMAGE, default: %(default)s]",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler import spec

    targets: list[tuple[Path, Path | None]] = []
    for given in args.paths:
        path = Path(given)
        if path.is_dir():
            rels = args.config or [os.path.relpath(f, path) for f in spec.find_config_files(path)]
            if not rels:
                return fail(
                    f"no Serve config found in {given} (looked for serve_config.yaml "
                    "and *config*.yaml files with import_path or applications)"
                )
            targets.extend((path / rel, path) for rel in rels)
        elif path.is_file():
            targets.append((path, Path(args.root) if args.root else None))
        else:
            return fail(f"{given}: no such file or directory")
    for file, _ in targets:
        if not file.is_file():
            return fail(f"{file}: no such file")
    from reconciler.errors import TransientError
    from reconciler.runtime.remote_code import CodeFetcher, default_cache_dir

    sandbox = None if args.no_sandbox else LazySandbox(default_image=args.default_image)
    fetch = CodeFetcher(default_cache_dir())  # remote working_dir zips; pip is checked offline
    try:
        results = [
            (
                str(file),
                spec.validate_file(
                    file,
                    root=root,
                    graph_builder=sandbox,
                    no_sandbox_reason="--no-sandbox" if sandbox is None else "",
                    default_image=args.default_image,
                    fetch=fetch,
                ),
            )
            for file, root in targets
        ]
    except TransientError as exc:
        return fail(f"cannot check the remote code: {exc}")
    _print(results, args.format)
    return 1 if any(_errors(issues) for _, issues in results) else 0


def _errors(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return [i for i in issues if not i.is_warning]


def _print(results: list[Result], style: str) -> None:
    if style == "json":
        print(json.dumps(_as_json(results), indent=2))
        return
    for _, issues in results:
        for issue in issues:
            print(_github(issue) if style == "github" else str(issue))
    print(_summary(results))


def _as_json(results: list[Result]) -> dict[str, Any]:
    files = [
        {
            "file": name,
            "valid": not _errors(issues),
            "issues": [asdict(i) for i in _errors(issues)],
            "warnings": [asdict(i) for i in issues if i.is_warning],
        }
        for name, issues in results
    ]
    return {"valid": all(f["valid"] for f in files), "files": files}


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _summary(results: list[Result]) -> str:
    bad = [name for name, issues in results if _errors(issues)]
    count = sum(len(_errors(issues)) for _, issues in results)
    warned = sum(len(issues) for _, issues in results) - count
    warnings = f" ({_plural(warned, 'warning')})" if warned else ""
    if not bad:
        return f"valid: {', '.join(name for name, _ in results)}{warnings}"
    return (
        f"invalid: {_plural(count, 'problem')} in {len(bad)} of "
        f"{_plural(len(results), 'file')}{warnings}"
    )


def _escape(text: str, *, prop: bool = False) -> str:
    """GitHub's workflow-command escaping (properties also escape ':' and ',')."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def _github(issue: ConfigIssue) -> str:
    props = [f"file={_escape(issue.file, prop=True)}"]
    if issue.line:
        props.append(f"line={issue.line}")
        if issue.column:
            props.append(f"col={issue.column}")
    message = f"{issue.message} ({issue.path})" if issue.path else issue.message
    kind = "warning" if issue.is_warning else "error"
    return f"::{kind} {','.join(props)}::{_escape(message)}"
