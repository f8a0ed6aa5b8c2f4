"""Serve's checks of `@serve.ingress(app)` that reading the code can make (Ray 2.60 raises
them when the module is imported): it decorates a class, under @serve.deployment, that class
defines no __call__, and `app` can be an ASGI app: Serve calls a plain function given to it with
no arguments to build the app, and uses anything else as the app itself."""

from __future__ import annotations

import ast
from collections.abc import Mapping

from reconciler.spec import codefacts
from reconciler.spec.codedefs import ClassInfo, FunctionInfo


def problems(
    stmt: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef,
    decorator: ast.expr,
    target: ast.expr | None,
    *,
    below: bool,
    functions: Mapping[str, FunctionInfo],
    classes: Mapping[str, ClassInfo],
) -> list[str]:
    """What is wrong with `decorator` (`@serve.ingress(target)`) on `stmt`; `below`: it sits
    under @serve.deployment."""
    if not isinstance(stmt, ast.ClassDef):
        return ["@serve.ingress must decorate a class, not a function"]
    if not below:
        return ["@serve.ingress must come below @serve.deployment (it wraps the class)"]
    found: list[str] = []
    info = codefacts.class_info(stmt)
    if "__call__" in info.methods:
        found.append(
            f"a class under @serve.ingress may not define __call__ ({stmt.name} does); "
            "the ASGI app answers the requests"
        )
    no_app = not (isinstance(decorator, ast.Call) and decorator.args)
    if no_app and info.plain and "__serve_build_asgi_app__" not in info.methods:
        found.append(
            f"serve.ingress() without an app needs {stmt.name} to define __serve_build_asgi_app__"
        )
    why = ingress_problem(target, functions, classes)
    if why:
        found.append(f"serve.ingress {why}")
    return found


def ingress_problem(
    target: ast.expr | None,
    functions: Mapping[str, FunctionInfo],
    classes: Mapping[str, ClassInfo],
) -> str | None:
    """Why `@serve.ingress(target)` cannot work, when the code proves it (Ray 2.60 calls a
    plain function given to it with no arguments to build the ASGI app, and uses anything else
    as the ASGI app itself), else None."""
    if target is None:
        return None
    if isinstance(target, ast.Constant | ast.Dict | ast.List | ast.Tuple | ast.Set):
        return "is given a literal value, not an ASGI app (e.g. app = FastAPI())"
    if not isinstance(target, ast.Name):
        return None
    if target.id in functions:
        info = functions[target.id]
        if info.required:
            return (
                f"is given {target.id}(), which needs {info.required} argument(s): Serve calls a "
                "function given to serve.ingress with none, to build the ASGI app"
            )
        return None
    cls = classes.get(target.id)
    if cls is not None and cls.plain and "__call__" not in cls.methods:
        return (
            f"is given the plain class {target.id}, which is not an ASGI app (it has no "
            "__call__); give it an app such as FastAPI() or a function that builds one"
        )
    return None
