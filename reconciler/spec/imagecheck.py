"""Would the application's modules import in the default image? Its contents are known: the
standard library, the web stack the image ships (read from the replica runtime's
`default_image_modules.txt`, one module per line, or a built-in list until that file exists),
and `ray`, which the replica runtime provides. A module of the repository that imports, at
module level, a package none of these hold fails in every replica: an error at the import line,
found without importing anything. Imports under `try: ... except ImportError` are optional, and
so are those under `if TYPE_CHECKING:`. Another image (image_uri, or a daemon given another
--default-image) is not checked: its contents are not known here.

Of `ray`, the replica runtime provides Serve's API (`ray.serve` and the modules under the
runtime's `ray/` directory), not a Ray cluster: an import of another `ray.` module fails in
every replica too, and the deployment-graph modules Ray 2.10 removed (`ray.serve.drivers`,
`ray.serve.deployment_graph`, `ray.serve.http_adapters`, `ray.dag`: DAGDriver, InputNode) are
named as such, since they are the usual reason an older Serve file fails under Ray 2.60."""

from __future__ import annotations

import functools
import sys
from collections import deque
from pathlib import Path

from reconciler.errors import ConfigIssue
from reconciler.settings import DEFAULT_IMAGE
from reconciler.spec.codescan import CodeReader

STOCK_IMAGE = DEFAULT_IMAGE  # the image scripts/build-image makes, whose contents are known
MODULES_FILE = Path(__file__).resolve().parents[1] / "replica" / "default_image_modules.txt"
RUNTIME_RAY = MODULES_FILE.parent / "ray"  # the runtime's `ray` package
# Removed from Ray in 2.10 with deployment graphs (Ray 2.60 has none of them).
GRAPH_MODULES = (
    "ray.serve.drivers",
    "ray.serve.deployment_graph",
    "ray.serve.http_adapters",
    "ray.dag",
)
# The replica runtime's own packages, on PYTHONPATH in every replica.
RUNTIME_MODULES = frozenset({"ray", "serve_replica"})
# Until the image's list is in the repository: what Debian's python3-fastapi, -starlette,
# -pydantic, -uvicorn, -requests and -multipart bring, with their dependencies (Depends only:
# the image is built without Recommends), and httpx and yaml, which the runtime engineer plans.
FALLBACK_MODULES = frozenset(
    {
        "fastapi",
        "starlette",
        "pydantic",
        "uvicorn",
        "requests",
        "multipart",
        "anyio",
        "httpx",
        "yaml",
        "typing_extensions",
        "idna",
        "sniffio",
        "h11",
        "click",
        "wsproto",
        "asgiref",
        "certifi",
        "charset_normalizer",
        "urllib3",
        "chardet",
        "six",
    }
)


@functools.cache
def image_modules(default_image: str) -> frozenset[str] | None:
    """The top-level modules `default_image` can import, or None when its contents are not
    known (any image but the stock one)."""
    if default_image != STOCK_IMAGE:
        return None
    try:
        lines = MODULES_FILE.read_text(encoding="utf-8").splitlines()
        listed = {line.split("#")[0].strip().split(".")[0] for line in lines}
    except OSError:
        listed = set(FALLBACK_MODULES)
    return frozenset(listed - {""}) | frozenset(sys.stdlib_module_names) | RUNTIME_MODULES


def missing_imports(
    reader: CodeReader, start: str, known: frozenset[str], image: str
) -> list[ConfigIssue]:
    """Every module-level import, in `start` and the repository modules it imports (at any
    depth), of a package that is neither in the repository nor among `known`."""
    issues: list[ConfigIssue] = []
    queue, seen = deque([start]), {start}
    while queue:
        loaded = reader.module(queue.popleft())
        if loaded is None:
            continue
        file, scan = loaded
        for site in scan.imports:
            local = [m for m in _candidates(site.module, site.names) if reader.find(m)]
            queue.extend(m for m in local if m not in seen)
            seen.update(local)
            if local or site.guarded:
                continue
            ray_problem = _ray_problem(site.module) if site.top == "ray" else None
            if ray_problem is not None:
                issues.append(ConfigIssue(file, site.line, site.column, "", ray_problem))
                continue
            if _available(reader, site.top, known):
                continue
            issues.append(
                ConfigIssue(
                    file,
                    site.line,
                    site.column,
                    "",
                    f"'{site.module}' is not in the default image {image} nor in the repository, "
                    "so importing this module fails in every replica; set runtime_env.image_uri "
                    "to an image that has it, or guard the import with try/except ImportError",
                )
            )
    return issues


def _candidates(module: str, names: tuple[str, ...]) -> list[str]:
    """The module itself, its parent packages (imported first), and `from m import x` names
    that may be submodules."""
    parts = module.split(".")
    parents = [".".join(parts[: i + 1]) for i in range(len(parts))]
    return [*parents, *(f"{module}.{n}" for n in names)]


def _available(reader: CodeReader, top: str, known: frozenset[str]) -> bool:
    return top in known or reader.find(top) is not None or reader.is_package_dir(top)


@functools.cache
def runtime_ray_modules() -> frozenset[str]:
    """The `ray` modules the replica runtime provides (ray, ray.serve, ray.serve.handle, ...)."""
    found = set()
    for path in RUNTIME_RAY.rglob("*.py"):
        parts = path.relative_to(RUNTIME_RAY.parent).with_suffix("").parts
        found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return frozenset(found)


def _ray_problem(module: str) -> str | None:
    """Why importing `module` (a `ray` module) fails in a replica, or None when it works."""
    provided = runtime_ray_modules()
    if module in provided:
        return None
    removed = next((m for m in GRAPH_MODULES if module == m or module.startswith(m + ".")), None)
    if removed is not None:
        return (
            f"'{module}' was removed in Ray 2.10 with deployment graphs (DAGDriver, InputNode, "
            "http adapters) and is not in Ray 2.60 either: bind the deployments to each other "
            "and call them through their handles, with the ingress deployment reading the "
            "request (a starlette Request, or a FastAPI app with @serve.ingress)"
        )
    return (
        f"'{module}' is not part of Ray that the replica runtime provides "
        f"({', '.join(sorted(provided))}): replicas run Serve's API without a Ray cluster, so "
        "importing this module fails in every replica"
    )
