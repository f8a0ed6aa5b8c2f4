"""What goes into a deployment's image, as data: tags, labels, Dockerfiles and build contexts.
Pure apart from reading the files it packs; `images.py` makes the Docker calls.

Two images, so that a code change never reinstalls the packages:

  serve-reconciler/deps:<instance>-<hash>   FROM the base (image_uri or the default image), the
                                            packages installed offline into /opt/serve-deps
                                            (a two-stage build: the wheels stay out of it)
  serve-reconciler/app:<instance>-<hash>    FROM the deps image (or the base), the replica
                                            runtime at /opt/serve and the code at /app

Each hash covers exactly what went in: the base image's ID, the requirement set and the hash of
every wheel, the code digest, the runtime files' digest. The runtime digest is in the tag but not
in DeploymentSpec.version: a reconciler upgrade builds new images for new replicas and restarts
none. Files are root's and world-readable: the replica (uid 65534) cannot change them.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from reconciler import naming
from reconciler.model import CodeTree, DeploymentSpec, PackageSet, short_hash
from reconciler.runtime import labels
from reconciler.runtime.bundle import write_bundle
from reconciler.runtime.containers import DEPS_DIR
from reconciler.runtime.wheels import Wheels

APP_REPOSITORY = "serve-reconciler/app"
DEPS_REPOSITORY = "serve-reconciler/deps"
_WHEELS = "/tmp/serve-wheels"
_STEP = re.compile(r"^Step (\d+)/(\d+) :")
_DOCKER_CHATTER = ("--->", "Removing intermediate", "Successfully built ", "Successfully tagged ")
_LAYER = re.compile(r"^---> ([0-9a-f]{12,64})$")


def _tag(repository: str, instance: str, *parts: str) -> str:
    digest = short_hash(*parts) + short_hash("tag", *parts)[:8]
    return f"{repository}:{naming.clean(instance)}-{digest}"


def deps_tag(instance: str, base_id: str, packages: PackageSet, wheels: Wheels) -> str:
    return _tag(DEPS_REPOSITORY, instance, base_id, packages.digest, wheels.digest)


def app_tag(instance: str, base_id: str, deps: str, code: CodeTree | None, runtime: str) -> str:
    return _tag(APP_REPOSITORY, instance, base_id, deps, code.digest if code else "", runtime)


def image_labels(
    instance: str, role: str, spec: DeploymentSpec | None, base: str
) -> dict[str, str]:
    """Owner and version of an image; `base` the image it was built FROM (for the GC). Without
    a spec (a packages image the sandbox asked for), only the owner, the role and the base."""
    found = {
        labels.MANAGED: "true",
        labels.OWNER: instance,
        labels.ROLE: role,
        labels.BASE_IMAGE: base,
    }
    if spec is not None:
        found |= {labels.APP: spec.app, labels.DEPLOYMENT: spec.name, labels.VERSION: spec.version}
    return found


def _label_line(values: dict[str, str]) -> str:
    """One LABEL instruction (the build API's labels= adds one build step per label)."""
    return "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in values.items())


def deps_dockerfile(base_id: str, wheels: Wheels, check: bool, values: dict[str, str]) -> str:
    pip = f"{_WHEELS}/installer/{wheels.installer}/pip"
    install = [
        "python3", pip, "install", "--no-index", "--find-links", _WHEELS, "--target", DEPS_DIR,
        "--disable-pip-version-check", "--no-cache-dir", "--no-warn-script-location",
        "-r", f"{_WHEELS}/requirements.txt",
    ]  # fmt: skip
    lines = [
        f"FROM {base_id} AS install",
        "USER root",
        f"COPY wheels {_WHEELS}",
        f"RUN {json.dumps(install)}",
    ]
    if check:
        lines += [f"ENV PYTHONPATH={DEPS_DIR}", f"RUN {json.dumps(['python3', pip, 'check'])}"]
    lines += [f"FROM {base_id}", f"COPY --from=install {DEPS_DIR} {DEPS_DIR}"]
    return "\n".join([*lines, _label_line(values)]) + "\n"


def app_dockerfile(parent_id: str, values: dict[str, str]) -> str:
    return f"FROM {parent_id}\nCOPY opt /opt\nCOPY app /app\n{_label_line(values)}\n"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def write_deps_context(out: IO[bytes], dockerfile: str, wheels: Wheels) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "Dockerfile", dockerfile.encode())
        tar.add(str(wheels.directory / "requirements.txt"), "wheels/requirements.txt")
        for name, _sha in wheels.files:
            tar.add(str(wheels.directory / name), f"wheels/{name}")
        installer = wheels.directory / "installer" / wheels.installer
        tar.add(str(installer), f"wheels/installer/{wheels.installer}")


def write_app_context(out: IO[bytes], dockerfile: str, code: CodeTree | None) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "Dockerfile", dockerfile.encode())
        write_bundle(tar, code)


@dataclass(frozen=True)
class BuildLine:
    """One line of Docker's build stream, sorted: a step, pip's output, an error, an ID."""

    kind: str  # "step", "output", "error", "id" (a stage's image), "layer" (a step's image)
    text: str
    step: int = 0
    steps: int = 0


def read_stream(chunks: Iterator[dict[str, object]]) -> Iterator[BuildLine]:
    for chunk in chunks:
        if "error" in chunk:
            yield BuildLine("error", str(chunk["error"]).strip())
        aux = chunk.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            yield BuildLine("id", str(aux["ID"]))
        for line in str(chunk.get("stream", "")).splitlines():
            text = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
            step = _STEP.match(text)
            layer = _LAYER.match(text)
            if layer:
                yield BuildLine("layer", layer.group(1))
            elif step:
                yield BuildLine("step", text, int(step.group(1)), int(step.group(2)))
            elif text and not text.startswith(_DOCKER_CHATTER):
                yield BuildLine("output", text)
