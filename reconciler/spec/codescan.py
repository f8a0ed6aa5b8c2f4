"""Find an application's deployments in the user's code: resolve import_path to a module file
of the repository, read it (and the repository modules it imports from) with `codemodule`, and
walk the bind graph from the named variable, ingress first. Nothing is imported or run."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ConfigIssue
from reconciler.spec.codemodule import (
    Bound,
    CodeIssue,
    ModuleScan,
    ScannedDeployment,
    Value,
    scan_module,
)
from reconciler.spec.issues import did_you_mean

__all__ = [
    "Bound",
    "ModuleScan",
    "ScannedApp",
    "ScannedDeployment",
    "scan_app",
    "scan_module",
    "split_import_path",
]

MAX_SOURCE_BYTES = 1 << 20


@dataclass(frozen=True)
class ScannedApp:
    """The deployments reachable from the import_path's bound graph, ingress first."""

    ingress: str
    deployments: tuple[str, ...]
    specs: tuple[ScannedDeployment, ...] = ()  # same order as `deployments`
    module_file: str = ""

    def deployment(self, name: str) -> ScannedDeployment | None:
        return next((d for d in self.specs if d.name == name), None)


def split_import_path(import_path: str) -> tuple[str, str]:
    """Serve's rule: `a.b:c` or `a.b.c` -> ("a.b", "c")."""
    if ":" in import_path:
        module, _, attr = import_path.partition(":")
        return module, attr
    module, _, attr = import_path.rpartition(".")
    return module, attr


def scan_app(
    root: Path, working_dir: str, py_modules: Sequence[str], import_path: str
) -> ScannedApp | list[ConfigIssue]:
    """The application that `import_path` names. Issues about the code carry the module file
    and line; issues about the import_path itself carry file "" (the caller places them at the
    config's import_path)."""
    return _AppScanner(root, working_dir, py_modules).app(import_path)


class _AppScanner:
    def __init__(self, root: Path, working_dir: str, py_modules: Sequence[str]) -> None:
        self.root = Path(os.path.realpath(root))
        self.working_dir = working_dir
        self.py_modules = list(py_modules)
        self.modules: dict[str, tuple[str, ModuleScan] | None] = {}

    def app(self, import_path: str) -> ScannedApp | list[ConfigIssue]:
        module, attr = split_import_path(import_path)
        loaded = self.module(module)
        if loaded is None:
            return [_config_issue(self._not_found(module))]
        file, scan = loaded
        fatal = [_code_issue(file, i) for i in scan.issues]
        value = scan.values.get(attr)
        if isinstance(value, Bound):
            return self._graph(value, file)
        if isinstance(value, ScannedDeployment):
            message = (
                f"'{attr}' in {file} is a deployment that is not bound; point "
                f"import_path at a variable holding {attr}.bind(...)"
            )
        elif attr in scan.defined:
            message = (
                f"'{attr}' in {file} is not a bound deployment (Deployment.bind(...)) "
                "that the reconciler can read; application builder functions are not "
                "supported"
            )
        else:
            names = [n for n, v in scan.values.items() if isinstance(v, Bound)]
            message = f"{file} defines no '{attr}'{did_you_mean(attr, names or scan.defined)}"
        return [*fatal, _config_issue(message)]

    def _graph(self, top: Bound, file: str) -> ScannedApp | list[ConfigIssue]:
        specs: dict[str, ScannedDeployment] = {}
        issues: list[ConfigIssue] = []
        stack = [top]
        while stack:
            node = stack.pop()
            dep = node.deployment
            seen = specs.get(dep.name)
            if seen is None:
                specs[dep.name] = dep
                issues.extend(_code_issue(dep.file, i) for i in dep.issues)
            elif (seen.class_name, seen.file, seen.options) != (
                dep.class_name,
                dep.file,
                dep.options,
            ):
                issues.append(
                    ConfigIssue(
                        dep.file,
                        node.line,
                        0,
                        "",
                        (
                            f"two different deployments in the graph are named '{dep.name}'; "
                            "give one another name with .options(name=...)"
                        ),
                    )
                )
            stack.extend(reversed(node.children))
        if issues:
            return issues
        ordered = tuple(specs.values())
        return ScannedApp(top.deployment.name, tuple(d.name for d in ordered), ordered, file)

    def module(self, module: str) -> tuple[str, ModuleScan] | None:
        if module in self.modules:
            return self.modules[module]
        self.modules[module] = None  # an import cycle resolves to "unknown"
        file = self.find(module)
        if file is None:
            return None
        data = (self.root / file).read_bytes()[: MAX_SOURCE_BYTES + 1]
        is_package = file.endswith("__init__.py")
        package = module if is_package else module.rpartition(".")[0]
        if len(data) > MAX_SOURCE_BYTES:
            scan = ModuleScan(issues=[CodeIssue(0, 0, f"{file} is larger than 1 MiB")])
        else:
            source = data.decode("utf-8", errors="replace")
            scan = scan_module(source, file, package=package, resolve=self._resolve)
        self.modules[module] = (file, scan)
        return self.modules[module]

    def _resolve(self, module: str, name: str) -> Value | None:
        loaded = self.module(module)
        return loaded[1].values.get(name) if loaded else None

    def find(self, module: str) -> str | None:
        """The repository-relative file of `module`: under working_dir, then under each
        py_modules entry (a package named by its directory, as in Ray)."""
        parts = module.split(".")
        bases = [(self.working_dir, parts)]
        for entry in self.py_modules:
            parent, _, pkg = entry.rstrip("/").rpartition("/")
            if parts[0] == pkg:
                bases.append((parent or ".", parts))
        for base, names in bases:
            for candidate in (f"{'/'.join(names)}.py", f"{'/'.join(names)}/__init__.py"):
                rel = os.path.normpath(os.path.join(base, candidate))
                if self._inside(rel):
                    return rel.replace(os.sep, "/")
        return None

    def _inside(self, rel: str) -> bool:
        real = os.path.realpath(self.root / rel)
        return real.startswith(str(self.root) + os.sep) and os.path.isfile(real)

    def _not_found(self, module: str) -> str:
        path = module.replace(".", "/")
        where = f"working_dir '{self.working_dir}'"
        if self.py_modules:
            where += " or py_modules"
        return (
            f"module '{module}' not found: looked for {path}.py and {path}/__init__.py "
            f"under {where}"
        )


def _config_issue(message: str) -> ConfigIssue:
    return ConfigIssue("", 0, 0, "import_path", message)


def _code_issue(file: str, issue: CodeIssue) -> ConfigIssue:
    return ConfigIssue(file, issue.line, issue.column, "", issue.message)
