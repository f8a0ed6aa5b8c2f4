"""Facts about a module's syntax tree that the scanner needs besides deployments: the signature
of plain functions, the shape of plain classes, the module-level imports (and which are guarded
by `try: ... except ImportError`), and which names may change after they are assigned."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

from reconciler.spec.codedefs import ClassInfo, FunctionInfo, ImportSite

_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
# Calls that cannot change a value handed to them: Serve's own (options are copied, bound
# arguments reach the replicas only), and builtins that only read.
_SERVE_CALLS = frozenset({"deployment", "options", "bind"})
_READING_BUILTINS = frozenset(
    {
        *("dict", "list", "tuple", "set", "frozenset", "len", "str", "int", "float", "bool"),
        *("repr", "sorted", "min", "max", "sum", "any", "all", "print", "isinstance", "range"),
    }
)
_MUTATORS = frozenset(
    {"update", "setdefault", "pop", "popitem", "clear", "append", "extend", "insert", "remove"}
)


def function_info(node: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionInfo:
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    defaults = len(a.defaults)
    required = len(positional) - defaults
    required += sum(1 for d in a.kw_defaults if d is None)
    total = len(positional) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    return FunctionInfo(
        name=node.name,
        line=node.lineno,
        positional=len(positional) + (a.vararg is not None),
        required=required,
        total=total,
        is_async=isinstance(node, ast.AsyncFunctionDef),
        decorated=bool(node.decorator_list),
    )


def class_info(node: ast.ClassDef) -> ClassInfo:
    bases = [b for b in node.bases if not (isinstance(b, ast.Name) and b.id == "object")]
    methods = frozenset(
        s.name for s in node.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)
    )
    return ClassInfo(node.name, node.lineno, not bases and not node.keywords, methods)


def builder_problem(info: FunctionInfo, args_given: bool) -> str | None:
    """Why Serve would refuse `info` as an application builder (Ray 2.60 calls it with exactly
    one argument, the config's args, and wants an Application back), or None."""
    if info.is_async:
        return (
            f"application builder {info.name}() is async; Serve calls it and needs the bound "
            "application it returns, not a coroutine"
        )
    if info.total != 1 or info.positional != 1:
        given = "the config gives args" if args_given else "even with no args"
        return (
            f"application builder {info.name}() must take exactly one parameter, the args "
            f"mapping (Serve calls it with one argument, {given}); it takes {info.total}"
        )
    return None


def module_imports(tree: ast.Module, package: str = "") -> list[ImportSite]:
    """The imports that run when the module is imported: module-level statements and the
    bodies of module-level if/try/with/class blocks, but not function bodies. Relative imports
    are made absolute against `package`."""
    return list(_imports(tree.body, package, guarded=False))


def _imports(body: list[ast.stmt], package: str, guarded: bool) -> Iterator[ImportSite]:
    for stmt in body:
        # Once the module changes its own import path, what it imports next is not ours to judge.
        guarded = guarded or _changes_sys_path(stmt)
        at = (stmt.lineno, stmt.col_offset + 1)
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                yield ImportSite(alias.name.split(".")[0], alias.name, *at, guarded)
        elif isinstance(stmt, ast.ImportFrom):
            module = absolute_module(stmt.module or "", stmt.level, package)
            names = tuple(a.name for a in stmt.names if a.name != "*")
            if module:
                yield ImportSite(module.split(".")[0], module, *at, guarded, names)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            catches = any(_catches_import_error(h) for h in stmt.handlers)
            yield from _imports(stmt.body, package, guarded or catches)
            for handler in stmt.handlers:
                yield from _imports(handler.body, package, guarded)
            yield from _imports(stmt.orelse + stmt.finalbody, package, guarded)
        elif isinstance(stmt, ast.If):
            skipped = _is_type_checking(stmt.test)
            yield from _imports(stmt.body, package, guarded or skipped)
            yield from _imports(stmt.orelse, package, guarded)
        elif isinstance(stmt, ast.With | ast.ClassDef):
            yield from _imports(stmt.body, package, guarded)


def absolute_module(module: str, level: int, package: str) -> str:
    """`from ..x import y` in `package` -> the absolute module name ("" when it leaves the
    top package)."""
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level - 1 > len(parts):
        return ""
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _changes_sys_path(stmt: ast.stmt) -> bool:
    """`sys.path.insert(...)`, `sys.path = ...`, `site.addsitedir(...)` and the like."""
    return any(
        isinstance(node, ast.Attribute)
        and (
            node.attr == "addsitedir"
            or (node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys")
        )
        for node in ast.walk(stmt)
    )


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type
    if kinds is None:
        return True
    names = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
    return any(
        (isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS)
        or (isinstance(n, ast.Attribute) and n.attr in _IMPORT_ERRORS)
        for n in names
    )


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def unstable_names(tree: ast.Module) -> set[str]:
    """Names whose module-level value code may change after it is assigned: mutated in place
    (`X[k] = v`, `X.update(...)`, `X += ...`, `del X[k]`), rebound in a function (`global X`),
    or handed to a call as a whole, where anything may happen to it. A literal assigned to any
    other name is a constant that reading the code can use."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.update(node.names)
        elif isinstance(node, ast.AugAssign | ast.Assign | ast.AnnAssign | ast.Delete):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
            found.update(_mutated_roots(targets, whole=isinstance(node, ast.AugAssign)))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _MUTATORS:
                found.update(_root_names(func.value))
            if _is_safe_call(func):
                continue
            for arg in [*node.args, *(k.value for k in node.keywords if k.arg is not None)]:
                found.update(_root_names(arg) if isinstance(arg, ast.Name | ast.Starred) else ())
    return found


def _is_safe_call(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in _SERVE_CALLS or func.id in _READING_BUILTINS
    return isinstance(func, ast.Attribute) and func.attr in _SERVE_CALLS


def _mutated_roots(targets: Sequence[ast.expr], *, whole: bool) -> Iterator[str]:
    for target in targets:
        if isinstance(target, ast.Subscript | ast.Attribute) or (
            whole and isinstance(target, ast.Name)
        ):
            yield from _root_names(target)


def _root_names(node: ast.expr) -> Iterator[str]:
    while isinstance(node, ast.Subscript | ast.Attribute | ast.Starred):
        node = node.value
    if isinstance(node, ast.Name):
        yield node.id


def holds_bind(node: ast.AST) -> bool:
    """True when `node` contains a `.bind(...)` call: it may make bound deployments."""
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "bind"
        for n in ast.walk(node)
    )
