"""Preparation: a validated config becomes one whose deployments each name the image built for
their version (`DeploymentSpec.built_image`), built when missing (`images.ImageBuilder`).

What raises: ConfigError when packages cannot be resolved or installed (at their config line);
PackagesUnavailable / EngineUnavailable when the index or the engine cannot be reached for now;
EngineError for a deployment with packages whose base image is missing or not allowed. A
deployment without packages whose image cannot be built keeps `built_image` None: its replicas
get the code copied in at start, and a missing or refused base image fails that start, as before.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
from collections.abc import Callable, Sequence

from reconciler.errors import EngineError, ImageMissing
from reconciler.model import DeploymentSpec, ServeConfig
from reconciler.runtime.images import ImageBuilder

log = logging.getLogger(__name__)


def check_allowed(image: str, patterns: Sequence[str]) -> None:
    """EngineError unless `image` matches one of --allowed-images' patterns (none: any)."""
    if patterns and not any(fnmatch.fnmatchcase(image, p) for p in patterns):
        raise EngineError(f"image {image} is not allowed by --allowed-images")


class Preparer:
    """One preparation: base image IDs are looked up once each."""

    def __init__(
        self,
        builder: ImageBuilder,
        default_image: str,
        check_image: Callable[[str], None],
        progress: Callable[[str], None],
    ) -> None:
        self._builder = builder
        self._default = default_image
        self._check = check_image
        self._progress = progress
        self._bases: dict[str, str | None] = {}

    def built_image(self, spec: DeploymentSpec) -> str | None:
        base = spec.image or self._default
        try:
            self._check(base)
            if base not in self._bases:
                self._bases[base] = self._builder.base_id(base)
            base_id = self._bases[base]
            if base_id is None:
                raise ImageMissing(
                    f"image {base} is not on this Docker engine, and the reconciler never pulls: "
                    "build or load it there (docker build, docker load)"
                )
            return self._builder.ensure(spec, base_id, self._progress)
        except EngineError as exc:
            if spec.packages is not None:
                raise
            log.warning("no image built for %s/%s: %s", spec.app, spec.name, exc)
            return None


def prepare_config(config: ServeConfig, preparer: Preparer) -> ServeConfig:
    apps = []
    for app in config.applications:
        specs = [
            dataclasses.replace(s, built_image=preparer.built_image(s)) for s in app.deployments
        ]
        apps.append(dataclasses.replace(app, deployments=tuple(specs)))
    return dataclasses.replace(config, applications=tuple(apps))
