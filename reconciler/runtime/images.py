"""Build (once) the image a deployment version runs, through the Docker API; remove the ones
no longer needed. See `imagebuild` for what goes in.

Never pulls: a base image missing from the engine is an error that says so. An image already
tagged (by this process, or found on the engine with our owner label) is not rebuilt, and a tag
this process has seen costs no Docker request, so preparing an unchanged config is free. Builds
run with no network (`network_mode=none`): the packages come as wheels resolved on the host.

Garbage collection removes images this instance built that no container uses (whoever owns the
container) and that none of the recently applied configs named; never an image another instance
(or nobody) labelled as its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reconciler.errors import ConfigError, ConfigIssue, EngineError, ImageMissing, ReconcilerError
from reconciler.model import DeploymentSpec, PackageSet
from reconciler.runtime import containers, imagebuild, labels
from reconciler.runtime.bundle import runtime_digest
from reconciler.runtime.wheels import PROBE, Interpreter, PipSettings, WheelResolver, Wheels

Progress = Callable[[str], None]
Api = Callable[[], Any]
Seam = Callable[[str], AbstractContextManager[None]]
ROLES = ("app-image", "deps-image")

log = logging.getLogger(__name__)


class ImageBuilder:
    def __init__(
        self,
        api: Api,
        seam: Seam,
        *,
        instance: str,
        cache_dir: Path,
        pip: PipSettings | None = None,
    ) -> None:
        self._api = api
        self._seam = seam
        self._instance = instance
        self._cache = Path(cache_dir)
        self._wheels = WheelResolver(self._cache, pip or PipSettings())
        self._present: dict[str, str] = {}  # tag -> image ID, known to be on the engine
        self._interpreters: dict[str, Interpreter] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._runtime: str | None = None
        self.builds = 0  # docker builds run (tests count them)

    @property
    def resolutions(self) -> int:
        return self._wheels.resolutions

    def base_id(self, image: str) -> str | None:
        """The ID of a local image, None when the engine does not have it."""
        found = self._inspect(image)
        return None if found is None else str(found["Id"])

    def _inspect(self, image: str) -> dict[str, Any] | None:
        try:
            with self._seam(f"inspect image {image}"):
                return dict(self._api().inspect_image(image))
        except ImageMissing:
            return None
        except EngineError as exc:  # a 404 the SDK did not classify as a missing image
            if "no such image" in str(exc).lower():
                return None
            raise

    def ensure(self, spec: DeploymentSpec, base_id: str, progress: Progress) -> str:
        """The tag of the image this deployment version runs, built when missing."""
        wheels, deps = None, ""
        packages = spec.packages
        if packages is not None:
            wheels = self._wheels.resolve(packages, self._interpreter(base_id), progress)
            deps = imagebuild.deps_tag(self._instance, base_id, packages, wheels)
        if self._runtime is None:
            self._runtime = runtime_digest()
        tag = imagebuild.app_tag(self._instance, base_id, deps, spec.code, self._runtime)
        who = f"{spec.app}/{spec.name}"

        def build() -> None:  # the packages image only when the app image is missing too
            parent = base_id
            if packages is not None and wheels is not None:
                role = imagebuild.image_labels(self._instance, "deps-image", spec, base_id)
                parent = self._ensure(
                    deps,
                    lambda: self._build_deps(packages, who, deps, base_id, wheels, role, progress),
                )
            self._build_app(spec, tag, parent, progress)

        self._ensure(tag, build)
        return tag

    def packages_image(self, base_image: str, packages: PackageSet, progress: Progress) -> str:
        """The image `base_image` plus `packages` (what the sandbox imports an application's
        code in, as Serve builds it in the application's runtime_env), built when missing."""
        base_id = self.base_id(base_image)
        if base_id is None:
            raise ImageMissing(f"image {base_image} is not on the engine (it is never pulled)")
        wheels = self._wheels.resolve(packages, self._interpreter(base_id), progress)
        tag = imagebuild.deps_tag(self._instance, base_id, packages, wheels)
        role = imagebuild.image_labels(self._instance, "deps-image", None, base_id)
        return self._ensure(
            tag,
            lambda: self._build_deps(packages, "the sandbox", tag, base_id, wheels, role, progress),
        )

    def forget(self, tag: str) -> None:
        """The engine said it has no such image: build it again next time."""
        with self._guard:
            self._present.pop(tag, None)

    def _ensure(self, tag: str, build: Callable[[], None]) -> str:
        """The image ID of `tag`, building it first when the engine does not have it."""
        with self._lock(tag):
            found = self._owned(tag)
            if found is None:
                build()
                found = self._owned(tag)
                if found is None:
                    raise EngineError(f"the build of {tag} left no image")
            with self._guard:
                self._present[tag] = found
            return found

    def _owned(self, tag: str) -> str | None:
        """The image ID of `tag` if the engine has it (and it is ours), else None."""
        with self._guard:
            if tag in self._present:
                return self._present[tag]
        found = self._inspect(tag)
        if found is None:
            return None
        if (found["Config"].get("Labels") or {}).get(labels.OWNER) != self._instance:
            raise EngineError(f"image {tag} exists and is not owned by this reconciler instance")
        return str(found["Id"])

    def building(self) -> set[str]:
        """Tags being built right now (the GC leaves them alone)."""
        with self._guard:
            return {tag for tag, lock in self._locks.items() if lock.locked()}

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    # --- builds ---------------------------------------------------------------------------

    def _build_deps(
        self,
        packages: PackageSet,
        who: str,
        tag: str,
        base_id: str,
        wheels: Wheels,
        role_labels: dict[str, str],
        progress: Progress,
    ) -> None:
        dockerfile = imagebuild.deps_dockerfile(base_id, wheels, packages.check, role_labels)
        with tempfile.TemporaryFile(dir=self._cache) as context:
            imagebuild.write_deps_context(context, dockerfile, wheels)
            failure = self._build(who, tag, context, progress, "the packages image", base_id)
        if failure:
            message = f"the packages cannot be installed in the image:\n{failure}"
            issue = ConfigIssue(
                packages.file, packages.line, packages.column, packages.path, message
            )
            raise ConfigError([issue])

    def _build_app(self, spec: DeploymentSpec, tag: str, parent: str, progress: Progress) -> None:
        role_labels = imagebuild.image_labels(self._instance, "app-image", spec, parent)
        dockerfile = imagebuild.app_dockerfile(parent, role_labels)
        self._cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self._cache) as context:
            imagebuild.write_app_context(context, dockerfile, spec.code)
            who = f"{spec.app}/{spec.name}"
            failure = self._build(who, tag, context, progress, "the image", parent)
        if failure:
            raise EngineError(f"building the image for {spec.app}/{spec.name} failed: {failure}")

    def _build(
        self,
        who: str,
        tag: str,
        context: Any,
        progress: Progress,
        what: str,
        base_id: str,
    ) -> str:
        """Run one build; the error text ("" on success). Intermediate stages are removed."""
        context.seek(0)
        self.builds += 1
        progress(f"building {what} for {who}")
        output: list[str] = []
        stages: list[str] = []
        layer = ""
        with self._seam(f"build {tag}"):
            stream = self._api().build(
                fileobj=context, custom_context=True, tag=tag, rm=True,
                forcerm=True, pull=False, network_mode="none", decode=True,
            )  # fmt: skip
            for line in imagebuild.read_stream(iter(stream)):
                if line.kind == "step":
                    progress(f"building {what} for {who}: step {line.step} of {line.steps}")
                elif line.kind == "output":
                    output.append(line.text)
                    if line.text.startswith(("Processing", "Installing", "Successfully")):
                        progress(f"{who}: {line.text}")
                elif line.kind == "id":
                    stages.append(line.text)
                elif line.kind == "layer":
                    layer = line.text
                else:
                    # The steps done so far stay behind as untagged images: remove them.
                    if layer and not base_id.split(":")[-1].startswith(layer):
                        self._remove(layer, stop_at=base_id)
                    for stage in stages:
                        self._remove(stage, stop_at=base_id)
                    return "\n".join([*output[-6:], line.text])
        for stage in stages[:-1]:  # the install stage: its files were copied into the image
            self._remove(stage, stop_at=base_id)
        log.info("built %s for %s", tag, who)
        return ""

    def _interpreter(self, base_id: str) -> Interpreter:
        """What wheels the base image's python3 takes: asked once per image ID, in a throwaway
        container with no network, kept on disk."""
        if base_id in self._interpreters:
            return self._interpreters[base_id]
        saved = self._cache / "interpreters" / f"{base_id.replace(':', '-')}.json"
        if saved.is_file():
            found = Interpreter.from_json(saved.read_text())
        else:
            found = Interpreter.from_json(self._probe(base_id))
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(found.__dict__))
        self._interpreters[base_id] = found
        return found

    def _probe(self, base_id: str) -> str:
        api = self._api()
        with self._seam("probe the image's python3"):
            created = api.create_container(
                base_id,
                command=["python3", "-c", PROBE],
                user=containers.USER,
                network_disabled=True,
                labels={labels.MANAGED: "true", labels.OWNER: self._instance, labels.ROLE: "probe"},
                host_config=api.create_host_config(**containers.HARDENING),
            )
        try:
            with self._seam("probe the image's python3"):
                api.start(created["Id"])
                status = api.wait(created["Id"], timeout=120)
                out = bytes(api.logs(created["Id"], stdout=True, stderr=True)).decode()
        finally:
            with contextlib.suppress(ReconcilerError), self._seam("remove the probe"):
                api.remove_container(created["Id"], force=True)
        if status.get("StatusCode") != 0:
            raise EngineError(f"the image's python3 cannot run: {out.strip()[-500:]}")
        return out.strip().splitlines()[-1]

    # --- garbage collection -----------------------------------------------------------------

    def collect(self, keep: Collection[str]) -> list[str]:
        """Remove our images that no container uses and `keep` does not name (nor build on);
        the tags removed."""
        api = self._api()
        with self._seam("list images"):
            ours = api.images(filters={"label": [f"{labels.OWNER}={self._instance}"]})
        with self._seam("list containers"):
            used = {c.get("ImageID") for c in api.containers(all=True)}
        wanted = set(keep) | self.building()
        keep_ids = used | {i["Id"] for i in ours if set(i.get("RepoTags") or ()) & wanted}
        # A kept image's deps image stays too (the next code change builds on it).
        keep_ids |= {_label(i, labels.BASE_IMAGE) for i in ours if i["Id"] in keep_ids}
        removed = []
        for image in sorted(ours, key=lambda i: _label(i, labels.ROLE)):  # app images first
            if _label(image, labels.ROLE) not in ROLES or image["Id"] in keep_ids:
                continue
            refs = [t for t in image.get("RepoTags") or () if not t.startswith("<none>")]
            for ref in refs or [image["Id"]]:
                if self._remove(ref, stop_at=_label(image, labels.BASE_IMAGE)):
                    removed.append(ref)
                    self.forget(ref)
        return removed

    def remove_all(self) -> None:
        """Every image this instance built (for `reconciler down`); those in use stay."""
        self.collect(keep=())

    def _remove(self, ref: str, stop_at: str) -> bool:
        """Remove `ref`, then the untagged intermediate images its build left between it and
        the image it was built FROM (`stop_at`, never removed: it may not be ours, even when
        someone untagged it meanwhile). Nothing tagged, shared or in use is removed."""
        found = self._inspect(ref)
        if found is None or not self._remove_one(ref):
            return False
        parent = str(found.get("Parent") or "")
        while parent and parent != stop_at:
            info = self._inspect(parent)
            if info is None or info.get("RepoTags") or not self._remove_one(parent):
                break
            parent = str(info.get("Parent") or "")
        return True

    def _remove_one(self, ref: str) -> bool:
        try:
            with self._seam(f"remove image {ref}"):
                self._api().remove_image(ref, noprune=True)
        except EngineError as exc:  # in use or with children (409), gone (404): leave it
            log.debug("image %s not removed: %s", ref, exc)
            return False
        return True


def _label(image: dict[str, Any], key: str) -> str:
    return str((image.get("Labels") or {}).get(key, ""))


def tags_of(specs: Iterator[DeploymentSpec]) -> set[str]:
    """The built images a config's deployments name."""
    return {s.built_image for s in specs if s.built_image}
