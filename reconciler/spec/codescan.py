"""Find an application's deployments in the user's code: resolve import_path to a module file
of the repository, read it (and the repository modules it imports from) with `codemodule`, and
walk the bind graph from the named variable, naming the deployments as Serve does. Nothing is
imported or run; what reading cannot decide is returned as `ScannedApp.undecided`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.errors import ConfigIssue
from reconciler.spec.codedefs import (
    Bound,
    CodeIssue,
    FunctionInfo,
    ModuleScan,
    ScannedDeployment,
    Value,
)
from reconciler.spec.codefacts import builder_problem
from reconciler.spec.codemodule import scan_module
from reconciler.spec.issues import did_you_mean

__all__ = [
    "Bound",
    "CodeReader",
    "ModuleScan",
    "ScannedApp",
    "ScannedDeployment",
    "scan_app",
    "scan_module",
    "serve_names",
    "split_import_path",
]

MAX_SOURCE_BYTES = 1 << 20
_MAX_IMPORT_HOPS = 20
GRAPH, BUILDER, UNKNOWN = "graph", "builder", "unknown"  # what import_path names


@dataclass(frozen=True)
class ScannedApp:
    """The deployments reachable from the import_path's bound graph, ingress first (then in
    Serve's build order). `undecided` says what reading could not decide (then `specs` may be
    incomplete, or empty for a builder); `definitions` are the deployments the modules read
    define, to place what the sandbox finds."""

    ingress: str
    deployments: tuple[str, ...]
    specs: tuple[ScannedDeployment, ...] = ()  # same order as `deployments`
    module_file: str = ""
    kind: str = GRAPH
    undecided: tuple[ConfigIssue, ...] = ()
    definitions: tuple[ScannedDeployment, ...] = ()
    graph_complete: bool = True  # False: some bind arguments could not be read

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
    root: Path,
    working_dir: str,
    py_modules: Sequence[str],
    import_path: str,
    *,
    args_given: bool = False,
    image_set: bool = False,
) -> ScannedApp | list[ConfigIssue]:
    """The application that `import_path` names. Issues about the code carry the module file
    and line; issues about the import_path itself carry file "" (the caller places them at the
    config's import_path). `image_set`: the application names its own image, which may hold a
    module the repository lacks."""
    reader = CodeReader(root, working_dir, py_modules)
    return reader.app(import_path, args_given=args_given, image_set=image_set)


def serve_names(top: Bound) -> list[tuple[str, Bound]]:
    """(name, node) of every distinct node of a graph in Serve's build order: children before
    parents, arguments in order; a second, different node of a taken name gets _1, _2, ...;
    the same node bound twice is one deployment. Iterative, so deep graphs cannot overflow."""
    named: list[tuple[str, Bound]] = []
    taken: set[str] = set()
    expanded: set[int] = set()
    stack: list[tuple[Bound, bool]] = [(top, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            base = name = node.deployment.name
            n = 1
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            named.append((name, node))
        elif id(node) not in expanded:
            expanded.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children))
    return named


class CodeReader:
    """Reads the modules of one application's code directories, each once."""

    def __init__(self, root: Path, working_dir: str, py_modules: Sequence[str]) -> None:
        self.root = Path(os.path.realpath(root))
        self.working_dir = working_dir
        self.py_modules = list(py_modules)
        self.modules: dict[str, tuple[str, ModuleScan] | None] = {}

    def app(
        self, import_path: str, *, args_given: bool = False, image_set: bool = False
    ) -> ScannedApp | list[ConfigIssue]:
        module, attr = split_import_path(import_path)
        loaded = self.module(module)
        if loaded is None:
            if image_set:
                why = f"module '{module}' is not in the repository (it may be in the image)"
                return ScannedApp("", (), kind=UNKNOWN, undecided=(_config_issue(why),))
            return [_config_issue(self._not_found(module))]
        file, scan = loaded
        fatal = [_code_issue(file, i) for i in scan.issues]
        if fatal:
            return fatal
        return self._target(file, scan, attr, args_given)

    def _target(
        self, file: str, scan: ModuleScan, attr: str, args_given: bool
    ) -> ScannedApp | list[ConfigIssue]:
        file, scan, found = self._follow(file, scan, attr)
        value = scan.values.get(found)
        if isinstance(value, Bound):
            return self._graph(value, file)
        if isinstance(value, ScannedDeployment):
            return [_config_issue(self._unbound(found, file))]
        if found in scan.functions:
            return self._builder(scan.functions[found], file, args_given)
        why = self._why_undecided(found, file, scan)
        if why is not None:
            return ScannedApp(
                "",
                (),
                module_file=file,
                kind=UNKNOWN,
                undecided=(why,),
                definitions=self.definitions(),
            )
        if found in scan.defined:
            message = (
                f"'{found}' in {file} is neither a bound deployment (Deployment.bind(...)) nor "
                "an application builder function"
            )
        else:
            names = [n for n, v in scan.values.items() if isinstance(v, Bound)]
            message = f"{file} defines no '{found}'{did_you_mean(found, names or scan.defined)}"
        return [_config_issue(message)]

    def _follow(self, file: str, scan: ModuleScan, attr: str) -> tuple[str, ModuleScan, str]:
        """Follow `from other import attr` through the repository's modules."""
        for _ in range(_MAX_IMPORT_HOPS):
            if attr in scan.values or attr not in scan.imported:
                break
            module, name = scan.imported[attr]
            loaded = self.module(module)
            if loaded is None:
                break
            file, scan = loaded
            attr = name
        return file, scan, attr

    def _why_undecided(self, attr: str, file: str, scan: ModuleScan) -> ConfigIssue | None:
        if attr in scan.opaque:
            return _code_issue(file, scan.opaque[attr])
        if attr in scan.imported:
            module = scan.imported[attr][0]
            return _config_issue(
                f"'{attr}' comes from module '{module}', which is not in the repository"
            )
        if attr not in scan.defined and scan.star_import:
            return _config_issue(f"'{attr}' may come from a `from ... import *` in {file}")
        return None

    def _unbound(self, attr: str, file: str) -> str:
        return (
            f"'{attr}' in {file} is a deployment that is not bound; point import_path at a "
            f"variable holding {attr}.bind(...)"
        )

    def _builder(
        self, info: FunctionInfo, file: str, args_given: bool
    ) -> ScannedApp | list[ConfigIssue]:
        problem = None if info.decorated else builder_problem(info, args_given)
        if problem:
            return [ConfigIssue(file, info.line, 0, "", problem)]
        why = f"import_path names the application builder {info.name}(args) ({file}:{info.line})"
        return ScannedApp(
            "",
            (),
            module_file=file,
            kind=BUILDER,
            undecided=(_config_issue(why),),
            definitions=self.definitions(),
        )

    def _graph(self, top: Bound, file: str) -> ScannedApp | list[ConfigIssue]:
        named = serve_names(top)
        issues: list[ConfigIssue] = []
        undecided: list[ConfigIssue] = []
        for _, node in named:
            dep = node.deployment
            issues.extend(_code_issue(dep.file, i) for i in dep.issues)
            undecided.extend(_code_issue(dep.file, i) for i in (*dep.undecided, *node.opaque))
        if issues:
            return list(dict.fromkeys(issues))
        ordered = [named[-1], *named[:-1]]
        return ScannedApp(
            ordered[0][0],
            tuple(name for name, _ in ordered),
            tuple(replace(node.deployment, name=name) for name, node in ordered),
            file,
            undecided=tuple(dict.fromkeys(undecided)),
            definitions=self.definitions(),
            graph_complete=not any(node.opaque for _, node in named),
        )

    def definitions(self) -> tuple[ScannedDeployment, ...]:
        return tuple(d for entry in self.modules.values() if entry for d in entry[1].definitions)

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
        for base, names in self._bases(module):
            for candidate in (f"{'/'.join(names)}.py", f"{'/'.join(names)}/__init__.py"):
                rel = os.path.normpath(os.path.join(base, candidate))
                if self._inside(rel, os.path.isfile):
                    return rel.replace(os.sep, "/")
        return None

    def is_package_dir(self, module: str) -> bool:
        """A directory that Python imports as a namespace package (no __init__.py)."""
        return any(
            self._inside(os.path.normpath(os.path.join(base, *names)), os.path.isdir)
            for base, names in self._bases(module)
        )

    def _bases(self, module: str) -> list[tuple[str, list[str]]]:
        parts = module.split(".")
        bases = [(self.working_dir, parts)]
        for entry in self.py_modules:
            parent, _, pkg = entry.rstrip("/").rpartition("/")
            if parts[0] == pkg:
                bases.append((parent or ".", parts))
        return bases

    def _inside(self, rel: str, kind: Callable[[str], bool]) -> bool:
        real = os.path.realpath(self.root / rel)
        return real.startswith(str(self.root) + os.sep) and kind(real)

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
