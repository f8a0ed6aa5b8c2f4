"""What reading one module of user code finds: deployments, bind graphs, plain functions and
classes, module-level constants and imports, and what reading could not decide. Value objects
only; `codemodule` fills them from the syntax tree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# What @serve.deployment accepts in Ray 2.60, plus the older names Serve code still uses
# (route_prefix, max_concurrent_queries, is_driver_deployment...), so a misspelt option is
# caught while reading.
DEPLOYMENT_OPTIONS = frozenset(
    {
        "name",
        "version",
        "num_replicas",
        "route_prefix",
        "max_concurrent_queries",
        "max_ongoing_requests",
        "max_queued_requests",
        "backpressure_config",
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
        "placement_group_bundle_label_selector",
        "max_replicas_per_node",
        "request_router_config",
        "max_constructor_retry_count",
        "gang_scheduling_config",
        "deployment_actors",
        "rolling_update_percentage",
        "max_surge_percent",
    }
)


@dataclass(frozen=True)
class CodeIssue:
    line: int
    column: int
    message: str


@dataclass(frozen=True)
class ScannedDeployment:
    """A deployment as the code defines it. `options` holds the decorator/.options() keyword
    arguments read (except `name`); `undecided` says which could not be read without running
    the code. `file` is the module file relative to the repository. `has_reconfigure` is None
    when unknown (a class with base classes)."""

    name: str
    class_name: str
    options: Mapping[str, Any]
    line: int
    file: str = ""
    option_lines: Mapping[str, int] = field(default_factory=dict)
    issues: tuple[CodeIssue, ...] = ()
    undecided: tuple[CodeIssue, ...] = ()
    is_function: bool = False
    has_reconfigure: bool | None = None
    asgi: bool = False  # decorated with @serve.ingress
    multiplexed: bool = False  # a method is decorated with @serve.multiplexed


@dataclass(frozen=True, eq=False)
class Bound:
    """`deployment.bind(children...)`: one node of a bind graph. Compared by identity, as Serve
    compares nodes: the same node bound twice is one deployment, two equal binds are two.
    `opaque` holds the arguments that may hold bound deployments but cannot be read."""

    deployment: ScannedDeployment
    children: tuple[Bound, ...]
    line: int
    opaque: tuple[CodeIssue, ...] = ()


@dataclass(frozen=True)
class FunctionInfo:
    """A plain module-level function: an application builder candidate, or an ASGI builder."""

    name: str
    line: int
    positional: int  # parameters that can take a positional argument (incl. *args: 1)
    required: int  # parameters without a default, positional or keyword-only
    total: int  # every parameter, *args and **kwargs included
    is_async: bool
    decorated: bool


@dataclass(frozen=True)
class ClassInfo:
    """A plain module-level class. `plain` is True when it has no base class (but object), so
    what it lacks it cannot inherit."""

    name: str
    line: int
    plain: bool
    methods: frozenset[str]


@dataclass(frozen=True)
class ImportSite:
    """A module-level `import x` / `from x import y` (absolute), and whether a try/except
    ImportError (or a TYPE_CHECKING block) makes a missing module harmless."""

    top: str  # the top-level package name
    module: str  # absolute (relative imports resolved against the module's package)
    line: int
    column: int
    guarded: bool
    names: tuple[str, ...] = ()  # of `from module import a, b`: each may be a submodule


Value = ScannedDeployment | Bound


@dataclass
class ModuleScan:
    """What one module defines at top level."""

    values: dict[str, Value] = field(default_factory=dict)
    defined: set[str] = field(default_factory=set)
    issues: list[CodeIssue] = field(default_factory=list)
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    opaque: dict[str, CodeIssue] = field(default_factory=dict)  # names computed by code
    imported: dict[str, tuple[str, str]] = field(default_factory=dict)  # local -> (module, name)
    imports: list[ImportSite] = field(default_factory=list)
    star_import: bool = False
    definitions: list[ScannedDeployment] = field(default_factory=list)  # every deployment made
