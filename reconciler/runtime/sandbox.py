"""The sandbox: build an application graph by importing the user's module in a throwaway
container of the target image, for what reading the code cannot decide (a builder called with
args, options held in variables). The replica runtime's own loader does the import
(`python3 -m serve_replica.describe`), so the graph is the one the replicas will build.

The container gets no network, a read-only root filesystem (the runtime and the code arrive in
two fresh volumes; /tmp is a small tmpfs), the `nobody` user, no capabilities, no privilege
escalation, a process limit, one CPU, a memory cap (no swap) and a wall-time limit after which it
is killed. It is removed afterwards whatever happens, with its volumes; leftovers of a crashed
reconciler (labelled with the owner and role "sandbox") are swept on the next run. Answers are
cached by (image, code digest, import_path, args, env): an unchanged commit never starts a second
sandbox, so an idle pass costs no Docker call.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import logging
import secrets
import tarfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from reconciler.errors import CodeBuildError, EngineError, EngineUnavailable
from reconciler.model import CodeTree, PackageSet
from reconciler.ports import GraphDescription
from reconciler.runtime import containers, labels, sandbox_output
from reconciler.runtime.bundle import RUNTIME_DIR, build_bundle
from reconciler.runtime.seam import LazyApi, seam

log = logging.getLogger(__name__)

COMMAND = ["python3", "-m", "serve_replica.describe"]
ROLE = "sandbox"
_CACHE_SIZE = 64
_MIB = 1 << 20


@dataclass(frozen=True)
class SandboxLimits:
    wall_s: float = 60.0
    cpus: float = 1.0
    memory_bytes: int = 512 * _MIB
    pids: int = 128
    tmp_bytes: int = 64 * _MIB
    log_bytes: int = 2 * _MIB  # the container's output kept (the answer is its last line)


Key = tuple[str, str, tuple[str, ...], str, str, tuple[tuple[str, str], ...]]


PackagesImage = Callable[[str, PackageSet, Callable[[str], None]], str]
"""(base image, packages, progress) -> an image holding both (runtime.images.ImageBuilder)."""


class SandboxGraphBuilder:
    """A `ports.GraphBuilder` on one Docker engine, owned by one reconciler instance."""

    def __init__(
        self,
        *,
        instance: str,
        default_image: str,
        image_allowlist: Sequence[str] = (),
        limits: SandboxLimits = SandboxLimits(),
        runtime_dir: Path = RUNTIME_DIR,
        docker_client: Any | None = None,
        packages_image: PackagesImage | None = None,
    ) -> None:
        self._instance = instance
        self._packages_image = packages_image
        self._default_image = default_image
        self._allowlist = tuple(image_allowlist)
        self.limits = limits
        self._runtime_dir = runtime_dir
        self._api = LazyApi(docker_client)
        self._lock = threading.Lock()
        self._cache: OrderedDict[Key, GraphDescription | CodeBuildError] = OrderedDict()
        self._swept = False
        self.runs = 0  # sandboxes started by this object (the cache keeps it low)

    def ping(self) -> None:
        with seam("ping"):
            self._api().ping()

    def describe(
        self,
        *,
        code: CodeTree,
        import_path: str,
        args: str,
        image: str | None,
        env: tuple[tuple[str, str], ...] = (),
        packages: PackageSet | None = None,
    ) -> GraphDescription:
        image = image or self._default_image
        if not (self._runtime_dir / "serve_replica" / "describe.py").is_file():
            raise EngineError(
                "this reconciler's replica runtime has no serve_replica.describe, which builds "
                "the graph in the sandbox"
            )
        if self._allowlist and not _allowed(image, self._allowlist):
            raise EngineError(f"image {image} is not allowed by --allowed-images")
        if packages is not None:
            if self._packages_image is None:
                raise EngineError(
                    "the application's runtime_env packages are installed only by the daemon "
                    "(a check here would import its code without them)"
                )
            # Serve builds the application in its runtime_env: its pip packages are there.
            image = self._packages_image(image, packages, lambda text: log.info("%s", text))
        key: Key = (image, code.digest, code.dirs, import_path, args, env)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is None:
            cached = self._attempt(code, import_path, args, image, env)
            with self._lock:
                self._cache[key] = cached
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        if isinstance(cached, CodeBuildError):
            raise cached
        return cached

    def _attempt(
        self,
        code: CodeTree,
        import_path: str,
        args: str,
        image: str,
        env: tuple[tuple[str, str], ...],
    ) -> GraphDescription | CodeBuildError:
        """The answer, or the user code's failure (both cached); engine trouble raises."""
        try:
            return self._run(code, import_path, args, image, env)
        except CodeBuildError as exc:
            return exc

    def _run(
        self,
        code: CodeTree,
        import_path: str,
        args: str,
        image: str,
        env: tuple[tuple[str, str], ...],
    ) -> GraphDescription:
        api = self._api()
        self._sweep(api)
        with seam(f"inspect image {image}"):
            try:
                api.inspect_image(image)
            except docker.errors.ImageNotFound:
                # Transient: the daemon retries with backoff, so pulling the image fixes it.
                raise EngineUnavailable(
                    f"image {image} is not on the Docker engine; pull or build it first"
                ) from None
        runtime_tar, app_tar = split_bundle(build_bundle(code, self._runtime_dir))
        name = f"serve-{self._instance}-{ROLE}-{secrets.token_hex(4)}"
        made: list[tuple[str, str]] = []
        self.runs += 1
        try:
            volumes = [
                self._volume(api, f"{name}-runtime", made),
                self._volume(api, f"{name}-app", made),
            ]
            container = self._create(api, name, image, volumes, import_path, args, env)
            made.append(("container", container))
            with seam(f"copy the code into {name}"):
                api.put_archive(container, "/opt/serve", runtime_tar)
                api.put_archive(container, "/app", app_tar)
            with seam(f"start {name}"):
                api.start(container)
            return self._outcome(api, container, import_path, code.dirs)
        finally:
            self._remove(api, made)

    def _labels(self) -> dict[str, str]:
        return {
            **containers.base_labels(self._instance, ROLE),
            labels.SANDBOX_STARTED: f"{time.time():.0f}",
        }

    def _volume(self, api: Any, name: str, made: list[tuple[str, str]]) -> str:
        with seam(f"create volume {name}"):
            api.create_volume(name=name, driver="local", labels=self._labels())
        made.append(("volume", name))
        return name

    def _create(
        self,
        api: Any,
        name: str,
        image: str,
        volumes: list[str],
        import_path: str,
        args: str,
        env: tuple[tuple[str, str], ...],
    ) -> str:
        limits = self.limits
        environment = {
            "HOME": "/tmp",
            **dict(env),
            # as a replica's: the runtime, then the packages of a packages image
            "PYTHONPATH": f"/opt/serve:{containers.DEPS_DIR}",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "SERVE_IMPORT_PATH": import_path,
            "SERVE_ARGS": args,
        }
        with seam(f"create {name}"):
            host_config = api.create_host_config(
                **{**containers.HARDENING, "pids_limit": limits.pids},
                network_mode="none",
                read_only=True,
                nano_cpus=int(limits.cpus * 1_000_000_000),
                mem_limit=limits.memory_bytes,
                memswap_limit=limits.memory_bytes,
                tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_bytes}"},
                binds={
                    volumes[0]: {"bind": "/opt/serve", "mode": "rw"},
                    volumes[1]: {"bind": "/app", "mode": "rw"},
                },
                log_config=docker.types.LogConfig(
                    type=docker.types.LogConfig.types.JSON,
                    config={"max-size": str(limits.log_bytes), "max-file": "1"},
                ),
            )
            created = api.create_container(
                image,
                command=COMMAND,
                name=name,
                user=containers.USER,
                working_dir=sandbox_output.WORK_DIR,
                environment=environment,
                labels=self._labels(),
                network_disabled=True,
                host_config=host_config,
                healthcheck=containers.NO_IMAGE_HEALTHCHECK,
            )
        return str(created["Id"])

    def _outcome(
        self, api: Any, container: str, import_path: str, dirs: tuple[str, ...]
    ) -> GraphDescription:
        began = time.monotonic()
        try:
            status = api.wait(container, timeout=self.limits.wall_s)
        except requests.exceptions.RequestException as exc:
            # The wait's read timeout is the wall-time limit (over a unix socket it comes as a
            # ConnectionError); a failure well before it is the engine going away.
            if time.monotonic() - began < self.limits.wall_s * 0.9:
                raise EngineUnavailable(
                    f"waiting for the sandbox: the Docker engine stopped answering ({exc})"
                ) from exc
            with contextlib.suppress(EngineError), seam("stop the sandbox"):
                api.kill(container)
            raise sandbox_output.timed_out(import_path, self.limits.wall_s) from None
        code = int(status.get("StatusCode", -1))
        with seam("read the sandbox's output"):
            stdout = _text(api.logs(container, stdout=True, stderr=False))
            if code == 0:
                return sandbox_output.parse_answer(stdout)
            stderr = _text(api.logs(container, stdout=False, stderr=True, tail=200))
            state = api.inspect_container(container).get("State") or {}
        raise sandbox_output.failure(
            stderr,
            exit_code=code,
            oom_killed=bool(state.get("OOMKilled")),
            import_path=import_path,
            dirs=dirs,
            memory_mib=self.limits.memory_bytes // _MIB,
            pids=self.limits.pids,
        )

    def _remove(self, api: Any, made: list[tuple[str, str]]) -> None:
        """Remove the container, then its volumes; a failure here must not hide the answer."""
        for kind, ident in sorted(made, key=lambda m: m[0] != "container"):
            with contextlib.suppress(EngineError), seam(f"remove sandbox {kind}"):  # gone: fine
                if kind == "container":
                    api.remove_container(ident, force=True, v=True)
                else:
                    api.remove_volume(ident, force=True)

    def _sweep(self, api: Any) -> None:
        """Once per builder: remove sandboxes of this owner that outlived any run (a reconciler
        that crashed in the middle of one)."""
        if self._swept:
            return
        self._swept = True
        stale_before = time.time() - (self.limits.wall_s * 2 + 60)
        owner = [f"{labels.OWNER}={self._instance}", f"{labels.ROLE}={ROLE}"]
        with contextlib.suppress(EngineError), seam("sweep old sandboxes"):
            leftovers = [
                ("container", str(c["Id"]))
                for c in api.containers(all=True, filters={"label": owner})
                if _started(c.get("Labels")) < stale_before
            ]
            found = (api.volumes(filters={"label": owner}) or {}).get("Volumes") or []
            leftovers += [
                ("volume", str(v["Name"]))
                for v in found
                if _started(v.get("Labels")) < stale_before
            ]
            self._remove(api, leftovers)


def split_bundle(bundle: bytes) -> tuple[bytes, bytes]:
    """The replica bundle (opt/serve/..., app/...) as two archives, one per volume."""
    return _subtree(bundle, "opt/serve/"), _subtree(bundle, "app/")


def _subtree(bundle: bytes, prefix: str) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(bundle)) as source,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as target,
    ):
        for member in source.getmembers():
            if not member.name.startswith(prefix):
                continue
            data = source.extractfile(member) if member.isfile() else None
            member.name = member.name[len(prefix) :]
            target.addfile(member, data)
    return out.getvalue()


def _allowed(image: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(image, p) for p in patterns)


def _started(found: Any) -> float:
    try:
        return float((found or {}).get(labels.SANDBOX_STARTED, "0"))
    except ValueError:
        return 0.0


def _text(raw: Any) -> str:
    return bytes(raw).decode("utf-8", "replace") if raw else ""
