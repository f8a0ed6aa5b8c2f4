"""The config contract: read a Serve config (YAML + JSON Schema + the code it names) into a
frozen `ServeConfig`, or a `ConfigError` with every issue located by file, line and column.
Code that reading cannot decide is built in a sandbox (`graph_builder`, a `ports.GraphBuilder`
the composition root hands in); the spec layer itself never runs user code."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError, ConfigIssue
from reconciler.model import ServeConfig
from reconciler.ports import GraphBuilder
from reconciler.spec.appcode import DEFAULT_CODE, REFUSE, WARN, CodeOptions
from reconciler.spec.discover import find_config_files
from reconciler.spec.envvars import redact
from reconciler.spec.imagecheck import STOCK_IMAGE
from reconciler.spec.loader import check_bytes, load_bytes
from reconciler.spec.remote import Fetch
from reconciler.spec.yamlsafe import MAX_BYTES

__all__ = [
    "STOCK_IMAGE",
    "CodeOptions",
    "Fetch",
    "find_config_files",
    "load_bytes",
    "load_checked",
    "load_config",
    "redacted_document",
    "validate_file",
]


def load_config(
    root: str | Path,
    config_path: str = "serve_config.yaml",
    *,
    environ: Mapping[str, str] | None = None,
    graph_builder: GraphBuilder | None = None,
    default_image: str = STOCK_IMAGE,
    fetch: Fetch | None = None,
) -> ServeConfig:
    """Load `config_path` (relative to the checkout `root`). `environ` resolves `from_env`
    values; None is validate mode (they become "" and are not looked up). Code that reading
    cannot decide is built with `graph_builder`; without one it is an error. `fetch` brings
    remote working_dir / py_modules zips here; without it such a URI is an error. The config's
    warnings are in `ServeConfig.warnings`."""
    code = CodeOptions(
        graph_builder=graph_builder,
        undecided=REFUSE,
        no_sandbox_reason="the reconciler was given no sandbox",
        default_image=default_image,
        fetch=fetch,
    )
    return load_checked(root, config_path, environ=environ, code=code)[0]


def load_checked(
    root: str | Path,
    config_path: str = "serve_config.yaml",
    *,
    environ: Mapping[str, str] | None = None,
    code: CodeOptions = DEFAULT_CODE,
) -> tuple[ServeConfig, list[ConfigIssue]]:
    """`load_config` with every option, returning the warnings as located issues too."""
    root = Path(root)
    clean = os.path.normpath(config_path)
    if os.path.isabs(clean) or clean == ".." or clean.startswith(".." + os.sep):
        raise ConfigError(
            [ConfigIssue(config_path, 0, 0, "", "the config path must be inside the repository")]
        )
    if not _inside(root, root / clean):
        raise ConfigError(
            [
                ConfigIssue(
                    config_path,
                    0,
                    0,
                    "",
                    "the config is a symlink to a place outside "
                    "the repository; the reconciler reads nothing outside it",
                )
            ]
        )
    try:
        with open(root / clean, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        # The path is the daemon's --config, relative to the repository root: say so.
        hint = (
            " (the config path is relative to the repository root; check --config and the branch)"
            if isinstance(exc, FileNotFoundError)
            else ""
        )
        message = f"cannot read the config: {exc.strerror or exc}{hint}"
        raise ConfigError([ConfigIssue(config_path, 0, 0, "", message)]) from None
    return check_bytes(
        data, root=root, config_path=clean.replace(os.sep, "/"), environ=environ, code=code
    )


def _inside(root: Path, path: Path) -> bool:
    """`path`, symlinks resolved, is `root` or below it (a missing file is left to open())."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop: open() says which
        return True
    return real.is_relative_to(root.resolve())


def validate_file(
    path: str | Path,
    *,
    root: str | Path | None = None,
    graph_builder: GraphBuilder | None = None,
    no_sandbox_reason: str = "",
    default_image: str = STOCK_IMAGE,
    fetch: Fetch | None = None,
) -> list[ConfigIssue]:
    """Every issue of one config file, errors and warnings ([] when valid and nothing to say),
    with file names relative to the current directory. `root` defaults to the enclosing git
    checkout, else the file's dir. Code that reading cannot decide is built with
    `graph_builder`; without one, or when it cannot run, that is a warning."""
    given = Path(path)
    top = Path(root) if root is not None else _guess_root(given.resolve().parent)
    code = CodeOptions(graph_builder, WARN, no_sandbox_reason, default_image, fetch)
    try:
        rel = os.path.relpath(given.resolve(), top.resolve())
        found = load_checked(top, rel, code=code)[1]
    except ValueError:
        return [ConfigIssue(str(given), 0, 0, "", "the file is not inside the root directory")]
    except ConfigError as exc:
        found = [*exc.issues, *exc.warnings]
    return sorted(_relative(issue, rel, given, top) for issue in found)


def _relative(issue: ConfigIssue, rel: str, given: Path, top: Path) -> ConfigIssue:
    if issue.file == rel.replace(os.sep, "/"):
        file = str(given)
    elif "://" in issue.file:  # a file of a remote working_dir: named by its URI
        file = issue.file
    else:
        file = os.path.relpath(top / issue.file)
    return ConfigIssue(file, issue.line, issue.column, issue.path, issue.message, issue.severity)


def _guess_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def redacted_document(config: ServeConfig) -> dict[str, Any]:
    """The config as written, with every secret env var value replaced by "<redacted>"."""
    return redact(config.document)
