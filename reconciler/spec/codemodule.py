"""Read one module of user code as a syntax tree and find its Serve deployments and the bound
graphs held by module-level variables. The code is never imported or run here: options are read
when they are literals (or module-level constants nothing changes), graphs when they are built at
module level from `X.bind(...)`, `X.options(...)` and plain variables. What cannot be read this
way is recorded as undecided, for the sandbox to decide (`ports.GraphBuilder`)."""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from reconciler.spec import codefacts, codeingress, codeoptions
from reconciler.spec.codedefs import (
    DEPLOYMENT_OPTIONS,
    Bound,
    CodeIssue,
    ModuleScan,
    ScannedDeployment,
    Value,
)
from reconciler.spec.codeoptions import shown

__all__ = ["DEPLOYMENT_OPTIONS", "Bound", "CodeIssue", "ModuleScan", "ScannedDeployment"]

Resolver = Callable[[str, str], Value | None]
_UNREADABLE = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)


def scan_module(
    source: str, filename: str, *, package: str = "", resolve: Resolver | None = None
) -> ModuleScan:
    """Read one module's source. `package` is the module's package (for relative imports);
    `resolve(module, name)` looks up names imported from other modules of the repository."""
    scan = ModuleScan()
    try:
        tree = ast.parse(source, filename=filename)
        unstable = codefacts.unstable_names(tree)
    except SyntaxError as exc:
        scan.issues.append(
            CodeIssue(exc.lineno or 0, exc.offset or 0, f"cannot parse {filename}: {exc.msg}")
        )
        return scan
    except (ValueError, RecursionError, MemoryError) as exc:
        scan.issues.append(CodeIssue(0, 0, f"cannot parse {filename}: {exc}"))
        return scan
    scan.imports = codefacts.module_imports(tree, package)
    _Scanner(scan, filename, package, resolve, unstable).run(tree)
    return scan


class _Scanner:
    def __init__(
        self,
        scan: ModuleScan,
        filename: str,
        package: str,
        resolve: Resolver | None,
        unstable: set[str],
    ) -> None:
        self.scan = scan
        self.filename = filename
        self.package = package
        self.resolve = resolve
        self.unstable = unstable
        self.serve_names: set[str] = set()  # local names meaning ray.serve
        self.decorator_names: set[str] = set()  # local names meaning ray.serve.deployment
        self.ingress_names: set[str] = set()  # local names meaning ray.serve.ingress
        self.multiplexed_names: set[str] = set()  # local names meaning ray.serve.multiplexed
        self.multiplexed_classes: set[str] = set()  # classes with a @serve.multiplexed method
        self.ray_names: set[str] = set()
        self.plain: dict[str, tuple[int, bool]] = {}  # undecorated class/function: line, is fn
        self.constants: dict[str, Any] = {}  # module-level literals nothing changes
        self.binds: set[str] = set()  # names whose value may hold bound deployments

    def run(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            try:
                self._stmt(stmt)
            except RecursionError:
                self.scan.issues.append(
                    CodeIssue(stmt.lineno, 0, f"{self.filename}: expression nested too deeply")
                )

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
        module = codefacts.absolute_module(stmt.module or "", stmt.level, self.package)
        for alias in stmt.names:
            local = alias.asname or alias.name
            if alias.name == "*":
                self.scan.star_import = True
                continue
            self._define(local, None)
            if module == "ray" and alias.name == "serve":
                self.serve_names.add(local)
            elif module == "ray.serve" and alias.name in ("deployment", "ingress", "multiplexed"):
                names = {
                    "deployment": self.decorator_names,
                    "ingress": self.ingress_names,
                    "multiplexed": self.multiplexed_names,
                }[alias.name]
                names.add(local)
            elif module:
                self.scan.imported[local] = (module, alias.name)

    def _define(self, name: str, value: Value | None) -> None:
        self.scan.defined.add(name)
        self.scan.imported.pop(name, None)
        self.scan.functions.pop(name, None)
        self.scan.classes.pop(name, None)
        self.scan.opaque.pop(name, None)
        self.plain.pop(name, None)
        self.constants.pop(name, None)
        self.binds.discard(name)
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
        ingress: tuple[int, ast.expr | None, ast.expr] | None = None  # (index, app, decorator)
        for i, dec in enumerate(stmt.decorator_list):
            if self._is_decorator(dec):
                found = self._deployment(stmt, None)
            elif isinstance(dec, ast.Call) and self._is_decorator(dec.func):
                found = self._deployment(stmt, dec)
            elif self._is_ingress(dec):
                ingress = (i, dec.args[0] if isinstance(dec, ast.Call) and dec.args else None, dec)
        if found is not None and ingress is not None:
            found = self._with_ingress(found, stmt, ingress)
        self._define(stmt.name, found)
        if found is not None:
            return
        self.plain[stmt.name] = (stmt.lineno, not isinstance(stmt, ast.ClassDef))
        if isinstance(stmt, ast.ClassDef):
            self.scan.classes[stmt.name] = codefacts.class_info(stmt)
        else:
            self.scan.functions[stmt.name] = codefacts.function_info(stmt)

    def _assign(self, targets: Sequence[ast.expr], value_node: ast.expr) -> None:
        value = self._eval(value_node)
        constant, is_constant = self._literal(value_node)
        for target in targets:
            for name in ast.walk(target):
                if not isinstance(name, ast.Name):
                    continue
                whole = isinstance(target, ast.Name)
                self._define(name.id, value if whole else None)
                if not whole or value is not None:
                    continue
                if is_constant and name.id not in self.unstable:
                    self.constants[name.id] = constant
                elif not is_constant:
                    self.scan.opaque[name.id] = CodeIssue(
                        value_node.lineno,
                        value_node.col_offset + 1,
                        f"'{name.id}' is computed by code ({shown(value_node)})",
                    )
                if codefacts.holds_bind(value_node):
                    self.binds.add(name.id)

    def _literal(self, node: ast.expr) -> tuple[Any, bool]:
        """(value, True) when `node` is a literal, or a constant of this module."""
        if isinstance(node, ast.Name) and node.id in self.constants:
            return copy.deepcopy(self.constants[node.id]), True
        if codeoptions.is_dict_call(node):  # dict(a=1, b=[2]): a literal mapping as a call
            assert isinstance(node, ast.Call)
            items = [(kw.arg, self._literal(kw.value)) for kw in node.keywords]
            if all(ok for _, (_, ok) in items):
                return {key: value for key, (value, _) in items}, True
            return None, False
        try:
            return ast.literal_eval(node), True
        except _UNREADABLE:
            return None, False

    # --- expressions ----------------------------------------------------------------------

    def _is_decorator(self, node: ast.expr) -> bool:
        return self._is_serve_attr(node, "deployment", self.decorator_names)

    def _has_multiplexed(self, cls: ast.ClassDef) -> bool:
        """A method of the class is decorated with @serve.multiplexed: its replicas should get
        the requests for one model id where that model is loaded."""
        names = self.multiplexed_names
        decorators = (d.func if isinstance(d, ast.Call) else d for d in _method_decorators(cls))
        return any(self._is_serve_attr(d, "multiplexed", names) for d in decorators)

    def _is_ingress(self, node: ast.expr) -> bool:
        func = node.func if isinstance(node, ast.Call) else node
        return self._is_serve_attr(func, "ingress", self.ingress_names)

    def _is_serve_attr(self, node: ast.expr, attr: str, local_names: set[str]) -> bool:
        if isinstance(node, ast.Name):
            return node.id in local_names
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
            if node.id in self.scan.imported and self.resolve is not None:
                return self.resolve(*self.scan.imported[node.id])
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
                children, opaque = self._children(node)
                return Bound(base, tuple(children), node.lineno, tuple(opaque))
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
        line, is_function = self.plain[target.id]
        found = self._with_options(self._new(target.id, line, is_function), options_call)
        if extra_args:
            found = replace(found, issues=(*found.issues, _positional(extra_args[0])))
        return self._record(found)

    def _children(self, node: ast.Call) -> tuple[list[Bound], list[CodeIssue]]:
        """The bound deployments among a bind's arguments, in Serve's order, and the arguments
        that may hold some but cannot be read."""
        found: list[Bound] = []
        opaque: list[CodeIssue] = []
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
            elif (isinstance(expr, ast.Name) and expr.id in self.binds) or (
                not isinstance(expr, ast.Name) and codefacts.holds_bind(expr)
            ):
                opaque.append(
                    CodeIssue(
                        expr.lineno,
                        expr.col_offset + 1,
                        f"the graph is built by code ({shown(expr)})",
                    )
                )
        return found, opaque

    # --- deployments and their options ---------------------------------------------------------

    def _new(self, class_name: str, line: int, is_function: bool) -> ScannedDeployment:
        info = self.scan.classes.get(class_name)
        has_reconfigure = None if info is None or not info.plain else "reconfigure" in info.methods
        return ScannedDeployment(
            class_name,
            class_name,
            {},
            line,
            self.filename,
            is_function=is_function,
            has_reconfigure=None if is_function else has_reconfigure,
            multiplexed=class_name in self.multiplexed_classes,
        )

    def _deployment(
        self, stmt: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef, call: ast.Call | None
    ) -> ScannedDeployment:
        base = ScannedDeployment(
            stmt.name,
            stmt.name,
            {},
            stmt.lineno,
            self.filename,
            multiplexed=stmt.name in self.multiplexed_classes,
        )
        if isinstance(stmt, ast.ClassDef):
            info = codefacts.class_info(stmt)
            known = "reconfigure" in info.methods if info.plain else None
            base = replace(base, has_reconfigure=known)
        else:
            base = replace(base, is_function=True)
        if call is None:
            return self._record(base)
        found = self._with_options(base, call)
        if call.args and not isinstance(call.args[0], ast.Name):
            found = replace(found, issues=(*found.issues, _positional(call.args[0])))
        return self._record(found)

    def _record(self, found: ScannedDeployment) -> ScannedDeployment:
        self.scan.definitions.append(found)
        return found

    def _with_ingress(
        self,
        found: ScannedDeployment,
        stmt: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef,
        ingress: tuple[int, ast.expr | None, ast.expr],
    ) -> ScannedDeployment:
        index, target, decorator = ingress
        below = index > next(
            i
            for i, d in enumerate(stmt.decorator_list)
            if self._is_decorator(d) or (isinstance(d, ast.Call) and self._is_decorator(d.func))
        )
        problems = codeingress.problems(
            stmt,
            decorator,
            target,
            below=below,
            functions=self.scan.functions,
            classes=self.scan.classes,
        )
        at = (decorator.lineno, decorator.col_offset + 1)
        issues = tuple(CodeIssue(*at, p) for p in problems)
        return replace(found, asgi=True, issues=(*found.issues, *issues))

    def _with_options(self, base: ScannedDeployment, call: ast.Call) -> ScannedDeployment:
        return codeoptions.with_options(base, call, self._literal)


def _method_decorators(cls: ast.ClassDef) -> list[ast.expr]:
    return [
        dec
        for stmt in cls.body
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
        for dec in stmt.decorator_list
    ]


def _positional(node: ast.expr) -> CodeIssue:
    return CodeIssue(
        node.lineno,
        node.col_offset + 1,
        "pass deployment options by keyword (name=..., num_replicas=...)",
    )
