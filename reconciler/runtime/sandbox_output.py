"""What a sandbox run said, in the reconciler's terms. `python3 -m serve_replica.describe`
prints one line of JSON on success (the user's own prints may come before it) and exits 1 with
a traceback whose last line is `ExcType: message` on failure. Pure functions: the answer becomes
a `GraphDescription`; a failure becomes a `CodeBuildError` that names the limit it hit (time,
memory, processes, the absent network) and the file and line of the user's code it came from."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.errors import CodeBuildError
from reconciler.ports import DescribedDeployment, GraphDescription

WORK_DIR = "/app/work"
PY_MODULES_DIR = "/app/py_modules"
_FRAME = re.compile(r'^\s*File "(?P<path>/app/(?:work|py_modules)/[^"]+)", line (?P<line>\d+)')
_NETWORK = re.compile(
    r"gaierror|Name or service not known|Temporary failure in name resolution|"
    r"Network is unreachable|No route to host|Connection refused|ConnectionRefusedError|"
    r"URLError|NewConnectionError|ConnectError|getaddrinfo",
    re.IGNORECASE,
)
_PROCESSES = re.compile(r"Resource temporarily unavailable|can't start new thread")
_ERROR_LINE = re.compile(
    r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)(?::|$)|^[A-Za-z_][\w.]*: "
)


def parse_answer(stdout: str) -> GraphDescription:
    """The graph from the last line of stdout that is a JSON object with deployments."""
    for line in reversed(stdout.splitlines()):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            answer = json.loads(text)
        except ValueError:
            continue
        if isinstance(answer, dict) and "deployments" in answer:
            return _description(answer)
    raise CodeBuildError(
        "the module was imported, but the sandbox printed no description of the application "
        f"(last output: {_tail(stdout)!r})"
    )


def _description(answer: Mapping[str, Any]) -> GraphDescription:
    try:
        ingress = answer["ingress"]
        items = answer["deployments"]
        if not isinstance(ingress, str) or not isinstance(items, list):
            raise TypeError("ingress must be a name and deployments a list")
        deployments = tuple(_deployment(item) for item in items)
    except (KeyError, TypeError, ValueError) as exc:
        raise CodeBuildError(
            f"the sandbox's description of the application is malformed: {exc}"
        ) from None
    return GraphDescription(ingress=ingress, deployments=deployments)


def _deployment(item: Any) -> DescribedDeployment:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise TypeError("each deployment needs a name")
    options = item.get("options") or {}
    methods = item.get("methods") or []
    if not isinstance(options, dict) or not isinstance(methods, list):
        raise TypeError(f"deployment {item['name']}: options must be a mapping, methods a list")
    return DescribedDeployment(
        name=item["name"],
        class_name=str(item.get("class_name") or item["name"]),
        is_function=bool(item.get("is_function", False)),
        options=options,
        methods=tuple(str(m) for m in methods),
        has_reconfigure=bool(item.get("has_reconfigure", False)),
        has_check_health=bool(item.get("has_check_health", False)),
        asgi_ingress=bool(item.get("asgi_ingress", False)),
        multiplexed=bool(item.get("multiplexed", False)),
    )


def failure(
    stderr: str,
    *,
    exit_code: int,
    oom_killed: bool,
    import_path: str,
    dirs: Sequence[str],
    memory_mib: int,
    pids: int,
) -> CodeBuildError:
    """Why the module could not be built, located in the repository where the traceback says."""
    file, line = locate(stderr, dirs)
    last = _last_line(stderr)
    if oom_killed or "MemoryError" in last:
        message = (
            f"importing {import_path} used more than {memory_mib} MiB, the sandbox's memory "
            "limit, and was stopped (does the module allocate without bound at import?)"
        )
    elif _PROCESSES.search(last):
        message = (
            f"importing {import_path} started more than {pids} processes or threads, the "
            f"sandbox's limit: {last}"
        )
    elif _NETWORK.search(last):
        message = (
            f"importing {import_path} tried to use the network, and the sandbox has none: "
            f"{last}. Code that reaches the network at import cannot be built; move it into "
            "the deployment's __init__"
        )
    elif last:
        message = f"importing {import_path} failed: {last}"
    else:
        message = f"importing {import_path} failed (exit code {exit_code}, no error output)"
    return CodeBuildError(message, file=file, line=line)


def timed_out(import_path: str, wall_s: float) -> CodeBuildError:
    return CodeBuildError(
        f"importing {import_path} did not finish within {wall_s:g} s, the sandbox's time limit, "
        "and was stopped (an endless loop, or a wait, at import?)"
    )


def locate(stderr: str, dirs: Sequence[str]) -> tuple[str, int]:
    """(repository path, line) of the innermost traceback frame in the user's code."""
    found = ("", 0)
    for text in stderr.splitlines():
        match = _FRAME.match(text)
        if match:
            path = _repository_path(match.group("path"), dirs)
            if path:
                found = (path, int(match.group("line")))
    return found


def _repository_path(container_path: str, dirs: Sequence[str]) -> str:
    """/app/work/x.py -> <working_dir>/x.py; /app/py_modules/<pkg>/y.py -> <that dir>/y.py."""
    if not dirs:
        return ""
    if container_path.startswith(WORK_DIR + "/"):
        return _join(dirs[0], container_path[len(WORK_DIR) + 1 :])
    rest = container_path[len(PY_MODULES_DIR) + 1 :]
    package, _, inner = rest.partition("/")
    for directory in dirs[1:]:
        if posixpath.basename(directory.rstrip("/")) == package:
            return _join(directory, inner)
    return ""


def _join(base: str, rel: str) -> str:
    return posixpath.normpath(posixpath.join(base, rel)) if base != "." else posixpath.normpath(rel)


def _last_line(text: str) -> str:
    """The last `ExcType: message` line (several processes may interleave their output), else
    the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    found = errors[-1] if errors else (lines[-1] if lines else "")
    return found[:500]


def _tail(text: str) -> str:
    return text.strip()[-200:]
