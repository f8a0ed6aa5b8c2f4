"""Read the keyword options of `@serve.deployment(...)` or `X.options(...)`: literals (and
module constants) are read, a misspelt option is an issue, and what is computed by code
(`num_replicas=N()` , `**make()`) is recorded as undecided, for the sandbox to decide."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from reconciler.spec.codedefs import DEPLOYMENT_OPTIONS, CodeIssue, ScannedDeployment
from reconciler.spec.issues import did_you_mean

Literal = Callable[[ast.expr], tuple[Any, bool]]  # (value, readable)


def with_options(base: ScannedDeployment, call: ast.Call, literal: Literal) -> ScannedDeployment:
    options = dict(base.options)
    lines = dict(base.option_lines)
    issues, undecided = list(base.issues), list(base.undecided)
    name = base.name
    for kw in call.keywords:
        _option(kw, base.class_name, literal, options, lines, issues, undecided)
    if isinstance(options.get("name"), str):
        name = options.pop("name")
    elif "name" in options:
        issues.append(CodeIssue(lines["name"], 0, f"name= of {base.class_name} must be a string"))
        options.pop("name")
    return replace(
        base,
        name=name,
        options=options,
        option_lines=lines,
        issues=tuple(issues),
        undecided=tuple(undecided),
    )


def _option(
    kw: ast.keyword,
    owner: str,
    literal: Literal,
    options: dict[str, Any],
    lines: dict[str, int],
    issues: list[CodeIssue],
    undecided: list[CodeIssue],
) -> None:
    where = (kw.value.lineno, kw.value.col_offset + 1)
    if kw.arg is None:
        spread, readable = literal(kw.value)
        if readable and isinstance(spread, dict) and all(isinstance(k, str) for k in spread):
            for key, value in spread.items():
                _value(key, value, where, owner, options, lines, issues)
            return
        undecided.append(CodeIssue(*where, f"**{shown(kw.value)} in the options of {owner}"))
        return
    value, readable = literal(kw.value)
    if not readable:
        undecided.append(CodeIssue(*where, f"option {kw.arg}= of {owner} ({shown(kw.value)})"))
        return
    _value(kw.arg, value, where, owner, options, lines, issues)


def _value(
    key: str,
    value: Any,
    where: tuple[int, int],
    owner: str,
    options: dict[str, Any],
    lines: dict[str, int],
    issues: list[CodeIssue],
) -> None:
    if key not in DEPLOYMENT_OPTIONS:
        hint = did_you_mean(key, DEPLOYMENT_OPTIONS)
        issues.append(CodeIssue(*where, f"unknown deployment option '{key}' on {owner}{hint}"))
        return
    options[key] = value
    lines[key] = where[0]


def is_dict_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "dict"
        and not node.args
        and all(kw.arg is not None for kw in node.keywords)
    )


def shown(node: ast.expr) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."
