"""Flags shared by several subcommands, each also read from a RECONCILER_* environment variable."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from reconciler import naming

ENV_PREFIX = "RECONCILER_"
DEFAULT_IMAGE = "serve-reconciler/python:bookworm"


def env_default(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def instance_name(text: str) -> str:
    """An --instance value for the commands that create containers (`down` takes any name, so
    that whatever an earlier version accepted can still be removed)."""
    problem = naming.instance_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(
            f"invalid instance name {text!r}: {problem} (it is in every container's name and in "
            "the ingress's host name)"
        )
    return text


def add_engine_flags(parser: argparse.ArgumentParser, *, owner_only: bool = False) -> None:
    """The Docker flags; `owner_only` (for `down`) offers just --instance, the rest default."""
    group = parser.add_argument_group("Docker")
    group.add_argument(
        "--instance",
        type=str if owner_only else instance_name,
        default=env_default("INSTANCE", "default"),
        help="name of this reconciler instance; it owns (and only touches) containers labelled "
        "with it [RECONCILER_INSTANCE, default: %(default)s]",
    )
    if owner_only:
        parser.set_defaults(
            default_image=DEFAULT_IMAGE, allowed_images="", publish_host="127.0.0.1"
        )
        return
    group.add_argument(
        "--default-image",
        default=env_default("DEFAULT_IMAGE", DEFAULT_IMAGE),
        metavar="IMAGE",
        help="image for replicas whose runtime_env has no image_uri, and for the ingress "
        "[RECONCILER_DEFAULT_IMAGE, default: %(default)s]",
    )
    group.add_argument(
        "--allowed-images",
        default=env_default("ALLOWED_IMAGES", ""),
        metavar="PATTERNS",
        help="comma-separated image patterns (fnmatch, e.g. 'registry.local/*,python:3.*'); a "
        "config asking for any other image is refused [RECONCILER_ALLOWED_IMAGES]",
    )
    group.add_argument(
        "--publish-host",
        default=env_default("PUBLISH_HOST", "127.0.0.1"),
        metavar="ADDRESS",
        help="address on which each replica's control port is published for the reconciler "
        "[RECONCILER_PUBLISH_HOST, default: %(default)s]",
    )


def engine_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from reconciler.app import EngineSettings

    patterns = tuple(p.strip() for p in args.allowed_images.split(",") if p.strip())
    return EngineSettings(
        instance=args.instance,
        default_image=args.default_image,
        publish_host=args.publish_host,
        allowed_images=patterns,
    )


def add_logging_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=env_default("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log to stderr [RECONCILER_LOG_LEVEL, default: %(default)s]",
    )


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("urllib3", "docker", "apscheduler", "waitress", "git"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level)))
    # "maximum number of running instances reached" is APScheduler coalescing a poll into the
    # pass already running: that is the design (one pass at a time), not a problem to report.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def fail(message: str, code: int = 2) -> int:
    print(f"reconciler: {message}", file=sys.stderr)
    return code
