"""Combine what reading the code found with what the sandbox built from it. Reading comes
first: a deployment whose options were all read keeps them, and its lines. The sandbox decides
the rest: the graph itself when reading could not follow it (a builder, a variable computed by
code), and the options of each deployment reading could not finish (`**OPTS`, `num_replicas=N`
with N computed). Issues keep pointing at the file and line of the class where it is known."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from reconciler.errors import ConfigIssue
from reconciler.ports import DescribedDeployment, GraphDescription
from reconciler.spec.codescan import GRAPH, ScannedApp, ScannedDeployment

UNSERIALIZABLE = "__unserializable__"


def merge(static: ScannedApp, built: GraphDescription) -> ScannedApp | list[ConfigIssue]:
    """The application as the sandbox built it, with what reading decided kept. A list of
    issues when the sandbox's answer cannot be used (an option that is not plain data, or an
    answer that disagrees with itself)."""
    # Reading's names only match the sandbox's when reading saw the whole graph.
    graph_read = static.kind == GRAPH and static.graph_complete and bool(static.specs)
    order = sorted(built.deployments, key=lambda d: d.name != built.ingress)
    if not order or order[0].name != built.ingress:
        return [ConfigIssue(static.module_file, 0, 0, "", _bad_answer(built))]
    specs: list[ScannedDeployment] = []
    issues: list[ConfigIssue] = []
    for described in order:
        read = static.deployment(described.name) if graph_read else None
        if read is not None and not read.undecided and read.class_name == described.class_name:
            specs.append(_with_facts(read, described))
            continue
        place = read or _definition(static, described)
        merged, problems = _from_sandbox(described, place, static.module_file)
        specs.append(merged)
        issues.extend(problems)
    if issues:
        return issues
    return replace(
        static,
        ingress=built.ingress,
        deployments=tuple(d.name for d in specs),
        specs=tuple(specs),
        undecided=(),
    )


def _bad_answer(built: GraphDescription) -> str:
    names = ", ".join(d.name for d in built.deployments) or "none"
    return (
        f"the sandbox's answer names ingress '{built.ingress}', which is not among its "
        f"deployments ({names}); this is a bug in the replica runtime, please report it"
    )


def _definition(static: ScannedApp, described: DescribedDeployment) -> ScannedDeployment | None:
    """Where the class is defined, among the modules read: the import_path's module first."""
    found = [d for d in static.definitions if d.class_name == described.class_name]
    found.sort(key=lambda d: d.file != static.module_file)
    return found[0] if found else None


def _with_facts(read: ScannedDeployment, described: DescribedDeployment) -> ScannedDeployment:
    """What reading could not know about the class (its inherited methods), from the sandbox."""
    return replace(
        read,
        is_function=described.is_function,
        has_reconfigure=described.has_reconfigure,
        asgi=read.asgi or described.asgi_ingress,
        multiplexed=read.multiplexed or described.multiplexed,
    )


def _from_sandbox(
    described: DescribedDeployment, place: ScannedDeployment | None, module_file: str
) -> tuple[ScannedDeployment, list[ConfigIssue]]:
    file = place.file if place else module_file
    line = place.line if place else 0
    # Options the sandbox found come from what reading could not finish: point there.
    found_at = place.undecided[0].line if place and place.undecided else line
    lines = {k: found_at for k in described.options} | dict(place.option_lines if place else {})
    issues = [
        ConfigIssue(
            file,
            lines.get(key, line),
            0,
            "",
            f"option {key}= of {described.class_name} is {shown}, not plain data (numbers, "
            "strings, lists, mappings); the reconciler cannot carry it to the replicas",
        )
        for key, shown in _unserializable(described.options)
    ]
    merged = ScannedDeployment(
        name=described.name,
        class_name=described.class_name,
        options=dict(described.options),
        line=line,
        file=file,
        option_lines=lines,
        is_function=described.is_function,
        # what reading knows for sure (a class without bases) first
        has_reconfigure=(
            place.has_reconfigure
            if place is not None and place.has_reconfigure is not None
            else described.has_reconfigure
        ),
        asgi=described.asgi_ingress or bool(place and place.asgi),
        multiplexed=described.multiplexed or bool(place and place.multiplexed),
    )
    return merged, issues


def _unserializable(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for key, value in options.items():
        marker = _marker(value)
        if marker is not None:
            found.append((key, marker))
    return found


def _marker(value: Any, depth: int = 0) -> str | None:
    if depth > 50:
        return None
    if isinstance(value, Mapping):
        if set(value) == {UNSERIALIZABLE}:
            return str(value[UNSERIALIZABLE])[:80]
        return next((m for v in value.values() if (m := _marker(v, depth + 1))), None)
    if isinstance(value, list):
        return next((m for v in value if (m := _marker(v, depth + 1))), None)
    return None
