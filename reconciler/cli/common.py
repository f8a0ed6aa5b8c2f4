"""Flags shared by several subcommands, each also read from a RECONCILER_* environment variable."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from reconciler import naming
from reconciler.reconcile.converge import Verdict
from reconciler.settings import (
    DEFAULT_CPU_OVERCOMMIT,
    DEFAULT_IMAGE,
    DEFAULT_INSTANCE,
    ENGINE_KINDS,
    INGRESS_NETWORKS,
    EngineSettings,
    Exit,
    HostLimits,
    ImageSettings,
)

ENV_PREFIX = "RECONCILER_"

# The one mapping of a run's verdict to the command's exit code.
EXIT_FOR: dict[Verdict, Exit] = {
    Verdict.RUNNING: Exit.OK,
    Verdict.INVALID: Exit.INVALID,
    Verdict.UNHOLDABLE: Exit.INVALID,
    Verdict.UNAVAILABLE: Exit.UNAVAILABLE,
    Verdict.NOT_CONVERGED: Exit.NOT_CONVERGED,
}


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
        "--engine",
        choices=ENGINE_KINDS,
        default=env_default("ENGINE", "docker"),
        help="docker: one Docker host; swarm: a Docker Swarm, DOCKER_HOST naming one of its "
        "managers (replicas placed across its nodes); auto: swarm when DOCKER_HOST is an active "
        "swarm's manager [RECONCILER_ENGINE, default: %(default)s]",
    )
    group.add_argument(
        "--instance",
        type=str if owner_only else instance_name,
        default=env_default("INSTANCE", DEFAULT_INSTANCE),
        help="name of this reconciler instance; it owns (and only touches) containers labelled "
        "with it [RECONCILER_INSTANCE, default: %(default)s]",
    )
    if owner_only:
        parser.set_defaults(
            default_image=DEFAULT_IMAGE, allowed_images="", publish_host="127.0.0.1",
            registry=None,
        )  # fmt: skip
        group.add_argument(
            "--cache-dir",
            default=env_default("CACHE_DIR"),
            metavar="DIR",
            help="the cache directory `up` used (a swarm's control token is kept there) "
            "[RECONCILER_CACHE_DIR, default: ~/.cache/serve-reconciler]",
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
    group.add_argument(
        "--ingress-network",
        choices=INGRESS_NETWORKS,
        default=env_default("INGRESS_NETWORK", "auto"),
        help="with --engine docker: where the ingress listens. host: HAProxy binds "
        "http_options' host:port in the host's network itself (no docker-proxy hop); "
        "bridge: a container of the instance's network with published ports, for a remote "
        "engine or a firewall that keeps containers from the host's addresses; auto: host, "
        "unless the engine is remote or the instance's ingress already runs on the bridge "
        "[RECONCILER_INGRESS_NETWORK, default: %(default)s]",
    )
    group.add_argument(
        "--registry",
        default=env_default("REGISTRY"),
        metavar="HOST:PORT",
        help="with --engine swarm: the registry each deployment's image is pushed to (from the "
        "manager) and every node pulls from, pinned by digest [RECONCILER_REGISTRY]",
    )
    add_limit_flags(parser)
    add_image_flags(parser)


def _split(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


def add_image_flags(parser: argparse.ArgumentParser) -> None:
    """How deployment images get their packages and remote code (runtime_env pip, working_dir
    URIs), and how many are kept."""
    defaults = ImageSettings()
    group = parser.add_argument_group(
        "Images",
        "Each deployment version becomes an image: the base, runtime_env.pip resolved on this "
        "host and installed offline, the code (remote working_dir zips fetched here).",
    )
    group.add_argument(
        "--pip-index-url",
        default=env_default("PIP_INDEX_URL"),
        metavar="URL",
        help="package index runtime_env.pip is resolved from, on this host (PIP_* variables "
        "apply too; credentials in it are never logged) [RECONCILER_PIP_INDEX_URL]",
    )
    group.add_argument(
        "--pip-extra-index-url",
        action="append",
        default=_split(env_default("PIP_EXTRA_INDEX_URL")),
        metavar="URL",
        help="another index (repeatable) [RECONCILER_PIP_EXTRA_INDEX_URL, comma-separated]",
    )
    group.add_argument(
        "--pip-find-links",
        action="append",
        default=_split(env_default("PIP_FIND_LINKS")),
        metavar="DIR_OR_URL",
        help="a directory or page of wheels (repeatable) [RECONCILER_PIP_FIND_LINKS]",
    )
    group.add_argument(
        "--max-code-bytes",
        type=int,
        default=int(env_default("MAX_CODE_BYTES", str(defaults.max_code_bytes)) or 0),
        metavar="BYTES",
        help="cap on a remote working_dir/py_modules zip, downloaded and unpacked "
        "[RECONCILER_MAX_CODE_BYTES, default: %(default)s]",
    )
    group.add_argument(
        "--code-timeout",
        type=_positive_float,
        default=float(env_default("CODE_TIMEOUT", str(defaults.code_timeout_s)) or 60),
        metavar="SECONDS",
        help="time limit of one remote code download [RECONCILER_CODE_TIMEOUT, default: "
        "%(default)s]",
    )
    group.add_argument(
        "--code-file-root",
        action="append",
        default=_split(env_default("CODE_FILE_ROOT")),
        metavar="DIR",
        help="allow file:// working_dir/py_modules zips under DIR (repeatable; none by default) "
        "[RECONCILER_CODE_FILE_ROOT]",
    )
    group.add_argument(
        "--keep-images",
        type=int,
        default=int(env_default("KEEP_IMAGES", str(defaults.keep_images)) or 3),
        metavar="N",
        help="keep the images of the last N applied commits; older ones no container uses are "
        "removed [RECONCILER_KEEP_IMAGES, default: %(default)s]",
    )
    group.add_argument(
        "--cache-dir",
        default=env_default("CACHE_DIR"),
        metavar="DIR",
        help="where resolved wheels and fetched code are kept [RECONCILER_CACHE_DIR, default: "
        "STATE_DIR/cache for run, ~/.cache/serve-reconciler otherwise]",
    )


def image_settings(args: argparse.Namespace) -> ImageSettings:
    from pathlib import Path

    if args.max_code_bytes < 1 or args.keep_images < 1:
        raise ValueError("--max-code-bytes and --keep-images must be at least 1")
    return ImageSettings(
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        pip_index_url=args.pip_index_url,
        pip_extra_index_urls=tuple(args.pip_extra_index_url),
        pip_find_links=tuple(args.pip_find_links),
        max_code_bytes=args.max_code_bytes,
        code_timeout_s=args.code_timeout,
        code_file_roots=tuple(Path(p) for p in args.code_file_root),
        keep_images=args.keep_images,
    )


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Host capacity",
        "Replicas start only while their num_cpus, memory, num_gpus and custom resources (Ray's "
        "logical resources) fit what the host offers; the rest wait, and the status says why.",
    )
    group.add_argument(
        "--cpu-overcommit",
        type=_positive_float,
        default=float(env_default("CPU_OVERCOMMIT", str(DEFAULT_CPU_OVERCOMMIT)) or 4),
        metavar="FACTOR",
        help="logical CPUs offered per core of the engine [RECONCILER_CPU_OVERCOMMIT, default: "
        "%(default)s]",
    )
    group.add_argument(
        "--max-replicas",
        type=int,
        default=int(env_default("MAX_REPLICAS", "0") or 0),
        metavar="N",
        help="most replicas the instance runs at once (0: 100 per core, at least 100) "
        "[RECONCILER_MAX_REPLICAS, default: 0]",
    )
    group.add_argument(
        "--gpus",
        type=float,
        default=float(env_default("GPUS", "0") or 0),
        metavar="N",
        help="GPUs the engine's host has (Docker does not say) [RECONCILER_GPUS, default: 0]",
    )
    group.add_argument(
        "--resources",
        default=env_default("RESOURCES", ""),
        metavar="JSON",
        help="custom resources the host offers, e.g. '{\"TPU\": 4}' (ray_actor_options.resources "
        "asks for them) [RECONCILER_RESOURCES]",
    )
    group.add_argument(
        "--hard-limits",
        action="store_true",
        default=(env_default("HARD_LIMITS", "") or "").lower() in ("1", "true", "yes"),
        help="also cap each replica at its num_cpus (CPU quota) and memory (memory limit); by "
        "default they only reserve room and weigh its CPU share, as in Ray "
        "[RECONCILER_HARD_LIMITS]",
    )


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def host_limits(args: argparse.Namespace) -> HostLimits:
    """The capacity flags as HostLimits; ValueError with a message for a bad --resources."""
    custom: dict[str, float] = {}
    if args.resources:
        try:
            raw = json.loads(args.resources)
        except ValueError as exc:
            raise ValueError(f"--resources must be a JSON object: {exc}") from None
        if not isinstance(raw, dict) or not all(
            isinstance(v, int | float) and v >= 0 for v in raw.values()
        ):
            raise ValueError('--resources must map names to amounts, e.g. {"TPU": 4}')
        custom = {str(k): float(v) for k, v in raw.items()}
    if args.max_replicas < 0 or args.gpus < 0:
        raise ValueError("--max-replicas and --gpus must be 0 or more")
    return HostLimits(
        cpu_overcommit=args.cpu_overcommit,
        gpus=args.gpus,
        custom=tuple(sorted(custom.items())),
        max_replicas=args.max_replicas or None,
        hard_limits=args.hard_limits,
    )


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    """The Docker flags as EngineSettings; ValueError with a message for a bad value."""
    patterns = tuple(p.strip() for p in args.allowed_images.split(",") if p.strip())
    limits = host_limits(args) if hasattr(args, "cpu_overcommit") else HostLimits()
    if hasattr(args, "pip_index_url"):
        images = image_settings(args)
    else:
        from pathlib import Path

        cache = getattr(args, "cache_dir", None)
        images = ImageSettings(cache_dir=Path(cache) if cache else None)
    return EngineSettings(
        instance=args.instance,
        default_image=args.default_image,
        publish_host=args.publish_host,
        allowed_images=patterns,
        limits=limits,
        images=images,
        kind=getattr(args, "engine", "docker"),
        registry=getattr(args, "registry", None) or None,
        ingress_network=getattr(args, "ingress_network", "auto"),
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


def fail(message: str, code: int = Exit.USAGE) -> int:
    print(f"reconciler: {message}", file=sys.stderr)
    return int(code)
