"""The code side of one application: read it (`codescan`), check its imports against the
default image (`imagecheck`), and where reading cannot decide, build the graph in the sandbox
(`ports.GraphBuilder`) and combine the two (`graphmerge`). Without a sandbox, what reading cannot
decide is a warning in validate mode ("cannot decide without running the code") and an error
otherwise, so a daemon never deploys a graph it could not see."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import (
    ERROR,
    WARNING,
    CodeBuildError,
    ConfigIssue,
    EngineError,
    EngineUnavailable,
)
from reconciler.model import CodeTree, canonical_json
from reconciler.ports import GraphBuilder
from reconciler.spec import graphmerge, imagecheck, packages, remote
from reconciler.spec.codescan import GRAPH, CodeReader, ScannedApp, split_import_path
from reconciler.spec.envvars import read_env_vars
from reconciler.spec.issues import DocPath, Issues
from reconciler.spec.remote import Fetch

WARN, REFUSE = "warn", "error"  # what a config gets for code only a sandbox can decide
TreeOf = Callable[[Mapping[str, Any], DocPath], CodeTree | None]


@dataclass(frozen=True)
class CodeOptions:
    """How the loader treats the code: the sandbox to build graphs in (None: none), whether
    code it cannot decide is a warning (validate) or an error (deploy), why no sandbox runs
    (said in those messages), and the daemon's default image (whose modules may be known)."""

    graph_builder: GraphBuilder | None = None
    undecided: str = REFUSE
    no_sandbox_reason: str = ""
    default_image: str = imagecheck.STOCK_IMAGE
    # Brings remote working_dir / py_modules zips onto this machine (None: such a URI is an
    # issue). The loader never does network I/O itself.
    fetch: Fetch | None = None


DEFAULT_CODE = CodeOptions()


class AppCode:
    """Finds one application's deployments, reporting into `issues`."""

    def __init__(
        self,
        root: Path,
        issues: Issues,
        options: CodeOptions,
        tree_of: TreeOf,
        fetched: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.issues = issues
        self.options = options
        self.tree_of = tree_of
        self.fetched = fetched or {}  # remote URI -> its unpacked directory

    def find(
        self, raw: Mapping[str, Any], path: DocPath, dirs: tuple[str, ...]
    ) -> ScannedApp | None:
        """The application's code, or None once the reason is reported (an error, or a
        warning that it cannot be decided without running it)."""
        import_path = str(raw["import_path"])
        runtime_env = _mapping(raw.get("runtime_env"))
        image = runtime_env.get("image_uri")
        args = raw.get("args") or {}
        reader = CodeReader(*remote.reader_dirs(self.root, dirs, self.fetched))
        scanned = reader.app(import_path, args_given=bool(args), image_set=isinstance(image, str))
        if isinstance(scanned, list):
            self.place(scanned, (*path, "import_path"))
            return None
        if scanned.kind == GRAPH and args:
            self.issues.at_value(
                (*path, "args"),
                "args are passed only to an application builder (a function that returns the "
                "bound graph); import_path names a bound graph, and Serve refuses args for it",
            )
            return None
        if not self._imports_ok(reader, import_path, runtime_env):
            return None
        if not scanned.undecided:
            return scanned
        return self._sandbox(scanned, runtime_env, path, import_path, args, image)

    def _imports_ok(
        self, reader: CodeReader, import_path: str, runtime_env: Mapping[str, Any]
    ) -> bool:
        """The import_path module imports (Serve builds the application in the application's
        runtime_env) in the default image, when that is the image and its contents are known."""
        env = runtime_env.get("env_vars")
        own_path = isinstance(env, Mapping) and "PYTHONPATH" in env  # imports from elsewhere
        known = imagecheck.image_modules(self.options.default_image)
        # runtime_env.pip / uv put modules in the deployment's image that the default lacks
        packaged = any(runtime_env.get(key) for key in ("pip", "uv"))
        if known is None or own_path or packaged or "image_uri" in runtime_env:
            return True
        module = split_import_path(import_path)[0]
        found = imagecheck.missing_imports(reader, module, known, self.options.default_image)
        for issue in found:
            self.issues.add(issue)
        return not found

    def _sandbox(
        self,
        scanned: ScannedApp,
        runtime_env: Mapping[str, Any],
        path: DocPath,
        import_path: str,
        args: Any,
        image: Any,
    ) -> ScannedApp | None:
        builder = self.options.graph_builder
        if builder is None:
            self._undecided(scanned, path, self.options.no_sandbox_reason or "no sandbox")
            return None
        tree = self.tree_of(runtime_env, path)
        if tree is None:
            return None
        plain_env, _ = read_env_vars(runtime_env.get("env_vars"), None)
        # The loader reports what is wrong with the packages: read them here without a word.
        quiet = Issues(self.issues.file, self.issues.positions)
        wanted = packages.read_packages(runtime_env, (*path, "runtime_env"), quiet, self.root)
        try:
            built = builder.describe(
                code=tree,
                import_path=import_path,
                args=canonical_json(args),
                image=image if isinstance(image, str) else None,
                # what module-level code may read; secret values stay out of the sandbox's Env
                env=tuple(sorted((k, e.value) for k, e in plain_env.items() if not e.secret)),
                packages=wanted,
            )
        except CodeBuildError as exc:
            self._build_failed(exc, path)
            return None
        except (EngineUnavailable, EngineError) as exc:
            if self.options.undecided != WARN:
                raise  # the daemon retries: nothing is wrong with the commit itself
            self._undecided(scanned, path, f"no sandbox could run: {exc}")
            return None
        merged = graphmerge.merge(scanned, built)
        if isinstance(merged, list):
            self.place(merged, (*path, "import_path"))
            return None
        return merged

    def _undecided(self, scanned: ScannedApp, path: DocPath, why_not: str) -> None:
        severity = WARNING if self.options.undecided == WARN else ERROR
        for reason in scanned.undecided:
            message = (
                f"cannot decide without running the code: {reason.message}; the application "
                f"is built in a sandbox container where a Docker engine answers ({why_not})"
            )
            if reason.file:
                self.issues.add(_with(reason, message, severity))
            else:
                self.issues.at_value((*path, "import_path"), message, severity)

    def _build_failed(self, exc: CodeBuildError, path: DocPath) -> None:
        message = f"building the application in a sandbox failed: {exc.message}"
        if exc.file:
            self.issues.add(ConfigIssue(exc.file, exc.line, 0, "", message))
        else:
            self.issues.at_value((*path, "import_path"), message)

    def place(self, found: list[ConfigIssue], at: DocPath) -> None:
        for issue in found:
            if issue.file:
                self.issues.add(issue)
            else:
                self.issues.at_value(at, issue.message, issue.severity)


def _with(issue: ConfigIssue, message: str, severity: str) -> ConfigIssue:
    return ConfigIssue(issue.file, issue.line, issue.column, issue.path, message, severity)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
