"""Finding this replica's deployment in the user's bound graph and building its init args.

Names follow Serve's graph build: children are named before their parents (post-order), and a
second, different node with a name already taken gets `_1`, `_2`, ... appended.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any

from .api import Application, Deployment

HandleFactory = Callable[[str], Any]


def import_target(import_path: str) -> Any:
    """Resolve "mod.sub:attr" or "mod.sub.attr" to the object."""
    if ":" in import_path:
        module_name, _, attr = import_path.partition(":")
    else:
        module_name, _, attr = import_path.rpartition(".")
    if not module_name or not attr:
        raise ImportError(f"import_path {import_path!r} must look like 'module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def to_application(target: Any, args: dict[str, Any]) -> Application:
    """The bound graph from an import target: an Application, a Deployment, or an app builder
    (a function of `args`, called with them, possibly as the pydantic model it annotates)."""
    if isinstance(target, Application):
        return target
    if isinstance(target, Deployment):
        return target.bind()
    if callable(target) and not isinstance(target, type):
        built = _call_builder(target, args)
        if isinstance(built, (Application, Deployment)):
            return to_application(built, {})
        raise TypeError(
            f"the application builder {getattr(target, '__name__', target)!r} returned "
            f"{type(built).__name__}, not an application (Deployment.bind(...))"
        )
    raise TypeError(
        f"import_path must point to a bound deployment (Deployment.bind(...)) or an "
        f"application builder, got {type(target).__name__}"
    )


def _call_builder(fn: Any, args: dict[str, Any]) -> Any:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    if not params:
        if args:
            raise TypeError(
                f"the application builder {fn.__name__!r} takes no arguments, but the config "
                f"gives args {sorted(args)}"
            )
        return fn()
    return fn(_as_annotated(fn, params[0], args))


def _as_annotated(fn: Any, param: inspect.Parameter, args: dict[str, Any]) -> Any:
    """`args` as the builder's annotated type when that is a pydantic model (Serve does so)."""
    annotation = param.annotation
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(fn).get(param.name, annotation)
        except Exception:
            return args
    pydantic = sys.modules.get("pydantic")  # imported by the module that annotates with it
    if (
        pydantic is not None
        and isinstance(annotation, type)
        and issubclass(annotation, pydantic.BaseModel)
    ):
        validate = getattr(annotation, "model_validate", None) or annotation.parse_obj
        return validate(args)
    return args


def _children(value: Any) -> list[Application]:
    if isinstance(value, Application):
        return [value]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _children(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _children(v)]
    return []


def name_nodes(root: Application) -> dict[int, tuple[str, Application]]:
    """id(node) -> (unique deployment name, node), in Serve's naming order."""
    names: dict[int, tuple[str, Application]] = {}
    taken: set[str] = set()

    def visit(node: Application) -> None:
        if id(node) in names:
            return
        for child in _children(list(node.args)) + _children(node.kwargs):
            visit(child)
        name, n = node.deployment.name, 1
        while name in taken:
            name, n = f"{node.deployment.name}_{n}", n + 1
        taken.add(name)
        names[id(node)] = (name, node)

    visit(root)
    return names


def find_node(root: Application, deployment_name: str) -> Application:
    names = name_nodes(root)
    for name, node in names.values():
        if name == deployment_name:
            return node
    known = ", ".join(sorted(n for n, _ in names.values()))
    raise LookupError(f"deployment {deployment_name!r} is not in the application (has: {known})")


def resolve_args(
    node: Application, root: Application, make_handle: HandleFactory
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The node's init args with every nested bound deployment replaced by a handle."""
    names = name_nodes(root)

    def sub(value: Any) -> Any:
        if isinstance(value, Application):
            return make_handle(names[id(value)][0])
        if isinstance(value, Deployment):
            return make_handle(value.name)
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, tuple):
            return tuple(sub(v) for v in value)
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        return value

    return tuple(sub(a) for a in node.args), {k: sub(v) for k, v in node.kwargs.items()}
