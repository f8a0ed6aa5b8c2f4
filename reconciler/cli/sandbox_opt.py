"""The sandbox for the one-shot commands (`validate`, `diff`): a `ports.GraphBuilder` that
imports the Docker side only when some code needs it, so a check of configs whose code reading
decides never touches Docker. When no engine answers, every call says so (EngineUnavailable),
and `validate` turns that into "cannot decide without running the code" warnings."""

from __future__ import annotations

import os

from reconciler.errors import EngineError, EngineUnavailable, ReconcilerError
from reconciler.model import CodeTree, PackageSet
from reconciler.ports import GraphBuilder, GraphDescription

# Sandbox containers of the one-shot commands carry this owner label unless
# RECONCILER_INSTANCE names another (they are removed after each run in any case).
OWNER = "validate"


class LazySandbox:
    """Builds the real sandbox on first use; remembers an engine that did not answer."""

    def __init__(self, *, default_image: str, instance: str | None = None) -> None:
        self._default_image = default_image
        self._instance = instance or os.environ.get("RECONCILER_INSTANCE") or OWNER
        self._builder: GraphBuilder | None = None
        self._failed: ReconcilerError | None = None

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
        if self._failed is not None:
            raise self._failed
        if self._builder is None:
            from reconciler.runtime.sandbox import SandboxGraphBuilder

            builder = SandboxGraphBuilder(
                instance=self._instance, default_image=self._default_image
            )
            try:
                builder.ping()
            except (EngineError, EngineUnavailable) as exc:
                self._failed = exc
                raise
            self._builder = builder
        return self._builder.describe(
            code=code, import_path=import_path, args=args, image=image, env=env, packages=packages
        )
