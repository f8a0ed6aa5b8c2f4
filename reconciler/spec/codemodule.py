"""Read one module of user code as a syntax tree and find its Serve deployments and the bound
graphs held by module-level variables. The code is never imported or run: options must be
literals, and graphs are built at module level from `X.bind(...)`, `X.options(...)` and plain
variables."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.spec.issues import did_you_mean

# What @serve.deployment accepts (Ray 2.0-2.40), so that a misspelt option is caught here.
DEPLOYMENT_OPTIONS = frozenset(
    {
        "name",
        "version",
        "num_replicas",
        "route_prefix",
        "max_concurrent_queries",
        "max_ongoing_requests",
        "max_queued_requests",
        "user_config",
        "autoscaling_config",
        "graceful_shutdown_wait_loop_s",
        "graceful_shutdown_timeout_s",
        "health_check_period_s",
        "health_check_timeout_s",
        "ray_actor_options",
        "init_args",
        "init_kwargs",
        "is_driver_deployment",
        "logging_config",
        "placement_group_bundles",
        "placement_group_strategy",
        "max_replicas_per_node",
    }
)


@dataclass(frozen=True)
class CodeIssue:
    line: int
    column: int
    message: str


@dataclass(frozen=True)
class ScannedDeployment:
    """A deployment as the code defines it. `options` holds the literal decorator/.options()
    keyword arguments except `name`; `file` is the module file relative to the repository."""

    name: str
    class_name: str
    options: Mapping[str, Any]
    line: int
    file: str = ""
    option_lines: Mapping[str, int] = field(default_factory=dict)
    issues: tuple[CodeIssue, ...] = ()
    multiplexed: bool = False  # a method is decorated with @serve.multiplexed


@dataclass(frozen=True)
class Bound:
    """`deployment.bind(children...)`: one node of a bind graph."""

    deployment: ScannedDeployment
    children: tuple[Bound, ...]
    line: int


@dataclass
class ModuleScan:
    """What one module defines at top level."""

    values: dict[str, ScannedDeployment | Bound] = field(default_factory=dict)
    defined: set[str] = field(default_factory=set)
    issues: list[CodeIssue] = field(default_factory=list)


Value = ScannedDeployment | Bound
Resolver = Callable[[str, str], Value | None]


def scan_module(
    source: str, filename: str, *, package: str = "", resolve: Resolver | None = None
) -> ModuleScan:
    """Read one module's source. `package` is the module's package (for relative imports);
    `resolve(module, name)` looks up names imported from other modules of the repository."""
    scan = ModuleScan()
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        scan.issues.append(
            CodeIssue(exc.lineno or 0, exc.offset or 0, f"cannot parse {filename}: {exc.msg}")
        )
        return scan
    except (ValueError, RecursionError, MemoryError) as exc:
        scan.issues.append(CodeIssue(0, 0, f"cannot parse {filename}: {exc}"))
        return scan
    _Scanner(scan, filename, package, resolve).run(tree)
    return scan


class _Scanner:
    def __init__(
        self, scan: ModuleScan, filename: str, package: str, resolve: Resolver | None
    ) -> None:
        self.scan = scan
        self.filename = filename
        self.package = package
        self.resolve = resolve
        self.serve_names: set[str] = set()  # local names meaning ray.serve
        self.decorator_names: set[str] = set()  # local names meaning ray.serve.deployment
        self.multiplexed_names: set[str] = set()  # local names meaning ray.serve.multiplexed
        self.multiplexed_classes: set[str] = set()  # classes with a @serve.multiplexed method
        self.ray_names: set[str] = set()
        self.plain: dict[str, int] = {}  # undecorated classes and functions
        self.imports: dict[str, tuple[str, str]] = {}

    def run(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            self._stmt(stmt)

    # --- statements ---------------------------------------------------------------------

    def _stmt(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Import):
            self._import(stmt)
        elif isinstance(stmt, ast.ImportFrom):
            self._import_from(stmt)
        elif isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            self._definition(stmt)
        elif isinstance(stmt, ast.Assign):
            self._assign(stmt.targets, stmt.value)
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            self._assign([stmt.target], stmt.value)

    def _import(self, stmt: ast.Import) -> None:
        for alias in stmt.names:
            if alias.name == "ray.serve" and alias.asname:
                self.serve_names.add(alias.asname)
            elif alias.name.split(".")[0] == "ray":
                self.ray_names.add(alias.asname or "ray")
            self._define(alias.asname or alias.name.split(".")[0], None)

    def _import_from(self, stmt: ast.ImportFrom) -> None:
        module = self._absolute(stmt.module or "", stmt.level)
        for alias in stmt.names:
            local = alias.asname or alias.name
            self._define(local, None)
            if module == "ray" and alias.name == "serve":
                self.serve_names.add(local)
            elif module == "ray.serve" and alias.name == "deployment":
                self.decorator_names.add(local)
            elif module == "ray.serve" and alias.name == "multiplexed":
                self.multiplexed_names.add(local)
            elif module and alias.name != "*":
                self.imports[local] = (module, alias.name)

    def _absolute(self, module: str, level: int) -> str:
        if level == 0:
            return module
        parts = self.package.split(".") if self.package else []
        if level - 1 > len(parts):
            return ""
        base = parts[: len(parts) - (level - 1)]
        return ".".join([*base, module] if module else base)

    def _define(self, name: str, value: Value | None) -> None:
        self.scan.defined.add(name)
        self.imports.pop(name, None)
        self.plain.pop(name, None)
        if value is None:
            self.scan.values.pop(name, None)
        else:
            self.scan.values[name] = value

    def _definition(self, stmt: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if isinstance(stmt, ast.ClassDef) and self._has_multiplexed(stmt):
            self.multiplexed_classes.add(stmt.name)
        else:
            self.multiplexed_classes.discard(stmt.name)
        found: ScannedDeployment | None = None
        for dec in stmt.decorator_list:
            if self._is_decorator(dec):
                found = self._deployment(stmt.name, stmt.lineno, None)
            elif isinstance(dec, ast.Call) and self._is_decorator(dec.func):
                found = self._deployment(stmt.name, stmt.lineno, dec)
        self._define(stmt.name, found)
        if found is None:
            self.plain[stmt.name] = stmt.lineno

    def _assign(self, targets: Sequence[ast.expr], value_node: ast.expr) -> None:
        value = self._eval(value_node)
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    self._define(name.id, value if isinstance(target, ast.Name) else None)

    def _has_multiplexed(self, cls: ast.ClassDef) -> bool:
        """Whether a method of the class is decorated with @serve.multiplexed (its replicas
        then get requests for one model id where that model is loaded)."""
        return any(
            self._is_serve_attr(dec.func if isinstance(dec, ast.Call) else dec, "multiplexed")
            for stmt in cls.body
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
            for dec in stmt.decorator_list
        )

    # --- expressions ----------------------------------------------------------------------

    def _is_decorator(self, node: ast.expr) -> bool:
        return self._is_serve_attr(node, "deployment")

    def _is_serve_attr(self, node: ast.expr, attr: str) -> bool:
        """`node` names ray.serve.<attr> (serve.<attr>, ray.serve.<attr>, or imported)."""
        if isinstance(node, ast.Name):
            names = self.decorator_names if attr == "deployment" else self.multiplexed_names
            return node.id in names
        if not (isinstance(node, ast.Attribute) and node.attr == attr):
            return False
        base = node.value
        if isinstance(base, ast.Name):
            return base.id in self.serve_names
        return (
            isinstance(base, ast.Attribute)
            and base.attr == "serve"
            and isinstance(base.value, ast.Name)
            and base.value.id in self.ray_names
        )

    def _eval(self, node: ast.expr) -> Value | None:
        if isinstance(node, ast.Name):
            if node.id in self.scan.values:
                return self.scan.values[node.id]
            if node.id in self.imports and self.resolve is not None:
                return self.resolve(*self.imports[node.id])
            return None
        if isinstance(node, ast.Call):
            return self._call(node)
        return None

    def _call(self, node: ast.Call) -> Value | None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("bind", "options"):
            base = self._eval(func.value)
            if not isinstance(base, ScannedDeployment):
                return None
            if func.attr == "bind":
                return Bound(base, tuple(self._children(node)), node.lineno)
            return self._with_options(base, node)
        if self._is_decorator(func) and node.args:
            return self._wrap(node.args[0], node, extra_args=node.args[1:])
        if isinstance(func, ast.Call) and self._is_decorator(func.func) and node.args:
            return self._wrap(node.args[0], func, extra_args=func.args)
        return None

    def _wrap(
        self, target: ast.expr, options_call: ast.Call, extra_args: Sequence[ast.expr]
    ) -> ScannedDeployment | None:
        """`serve.deployment(Cls, ...)` or `serve.deployment(...)(Cls)`."""
        if not isinstance(target, ast.Name) or target.id not in self.plain:
            return None
        found = self._deployment(target.id, self.plain[target.id], options_call)
        if extra_args:
            return replace(found, issues=(*found.issues, _positional(extra_args[0])))
        return found

    def _children(self, node: ast.Call) -> list[Bound]:
        found: list[Bound] = []
        pending: list[ast.expr] = [*node.args, *(kw.value for kw in node.keywords)]
        pending.reverse()
        while pending:
            expr = pending.pop()
            value = self._eval(expr)
            if isinstance(value, Bound):
                found.append(value)
            elif isinstance(expr, ast.List | ast.Tuple | ast.Set):
                pending.extend(reversed(expr.elts))
            elif isinstance(expr, ast.Dict):
                pending.extend(reversed(expr.values))
            elif isinstance(expr, ast.Starred):
                pending.append(expr.value)
        return found

    # --- options ------------------------------------------------------------------------------

    def _deployment(self, class_name: str, line: int, call: ast.Call | None) -> ScannedDeployment:
        base = ScannedDeployment(
            class_name,
            class_name,
            {},
            line,
            self.filename,
            multiplexed=class_name in self.multiplexed_classes,
        )
        if call is None:
            return base
        found = self._with_options(base, call)
        if call.args and self._is_decorator(call.func) and not isinstance(call.args[0], ast.Name):
            found = replace(found, issues=(*found.issues, _positional(call.args[0])))
        return found

    def _with_options(self, base: ScannedDeployment, call: ast.Call) -> ScannedDeployment:
        options = dict(base.options)
        lines = dict(base.option_lines)
        issues = list(base.issues)
        name = base.name
        for kw in call.keywords:
            issue = self._option(kw, base.class_name, options, lines)
            if issue is not None:
                issues.append(issue)
        if isinstance(options.get("name"), str):
            name = options.pop("name")
        elif "name" in options:
            issues.append(
                CodeIssue(lines["name"], 0, f"name= of {base.class_name} must be a string")
            )
            options.pop("name")
        return replace(base, name=name, options=options, option_lines=lines, issues=tuple(issues))

    def _option(
        self, kw: ast.keyword, owner: str, options: dict[str, Any], lines: dict[str, int]
    ) -> CodeIssue | None:
        where = (kw.value.lineno, kw.value.col_offset + 1)
        if kw.arg is None:
            return CodeIssue(
                *where,
                f"**{ast.unparse(kw.value)} in the options of {owner} "
                "cannot be read without running the code; write the "
                "options out",
            )
        if kw.arg not in DEPLOYMENT_OPTIONS:
            return CodeIssue(
                *where,
                f"unknown deployment option '{kw.arg}' on {owner}"
                f"{did_you_mean(kw.arg, DEPLOYMENT_OPTIONS)}",
            )
        try:
            options[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return CodeIssue(
                *where,
                f"option {kw.arg}= of {owner} is not a literal value; the "
                "reconciler reads options without running your code, so "
                "write the value out or set it in the config",
            )
        lines[kw.arg] = kw.value.lineno
        return None


def _positional(node: ast.expr) -> CodeIssue:
    return CodeIssue(
        node.lineno,
        node.col_offset + 1,
        "pass deployment options by keyword (name=..., num_replicas=...)",
    )
