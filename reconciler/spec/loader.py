"""Config bytes -> a validated `ServeConfig`, or a `ConfigError` carrying every issue found:
YAML reading, the JSON Schema, the shape rules, what each Serve field does here
(`dispositions`), the code (read, and built in a sandbox where reading cannot decide:
`appcode`), and the resolution of each deployment's fields. Warnings ride along with either."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler import naming
from reconciler.errors import ConfigError, ConfigIssue, ReconcilerError
from reconciler.model import ApplicationSpec, CodeTree, HttpOptions, ServeConfig, canonical_json
from reconciler.spec import (
    discover,
    dispositions,
    imageref,
    options,
    packages,
    remote,
    schema,
    yamlsafe,
)
from reconciler.spec.appcode import DEFAULT_CODE, AppCode, CodeOptions
from reconciler.spec.codescan import ScannedApp
from reconciler.spec.codetree import TreeError, check_dir
from reconciler.spec.entries import DeploymentChecks, Entries
from reconciler.spec.envvars import EnvEntry, merge_runtime_env, read_env_vars
from reconciler.spec.issues import DocPath, Issues, Positions, format_path

_SINGLE_KEYS = ("import_path", "runtime_env", "host", "port", "deployments", "args")


def load_bytes(
    data: bytes,
    *,
    root: Path,
    config_path: str,
    environ: Mapping[str, str] | None,
    code: CodeOptions = DEFAULT_CODE,
) -> ServeConfig:
    """Validate and resolve one config (its warnings in `ServeConfig.warnings`)."""
    return check_bytes(data, root=root, config_path=config_path, environ=environ, code=code)[0]


def check_bytes(
    data: bytes,
    *,
    root: Path,
    config_path: str,
    environ: Mapping[str, str] | None,
    code: CodeOptions = DEFAULT_CODE,
) -> tuple[ServeConfig, list[ConfigIssue]]:
    """Validate and resolve one config: the config and its warnings. Whatever the input, only
    ConfigError escapes, or what the sandbox raises when it cannot run (EngineUnavailable...)."""
    try:
        return _Load(root, config_path, environ, code).run(data)
    except ReconcilerError:
        raise
    except Exception as exc:  # the contract: callers only ever see ConfigError
        raise ConfigError(
            [
                ConfigIssue(
                    config_path,
                    0,
                    0,
                    "",
                    (
                        f"internal error while validating ({type(exc).__name__}: {exc}); "
                        "this is a bug in the reconciler, please report it"
                    ),
                )
            ]
        ) from exc


def _fatal(file: str, line: int, column: int, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(file, line, column, "", message)])


class _Load:
    def __init__(
        self,
        root: Path,
        config_path: str,
        environ: Mapping[str, str] | None,
        code: CodeOptions,
    ) -> None:
        self.root = root
        self.file = config_path
        self.environ = environ
        self.code = code
        self.fetched: dict[str, str] = {}  # remote working_dir / py_modules URI -> unpacked dir
        self.default_dir = posixpath.dirname(config_path.replace("\\", "/")) or "."
        self.issues = Issues(config_path, Positions())
        self.trees: dict[tuple[str, ...], CodeTree | str] = {}

    def run(self, data: bytes) -> tuple[ServeConfig, list[ConfigIssue]]:
        try:
            parsed = yamlsafe.parse(data)
        except yamlsafe.YamlRefused as exc:
            raise _fatal(self.file, exc.mark.line, exc.mark.column, exc.message) from None
        self.issues = Issues(self.file, parsed.positions)
        for path, at_key, message in parsed.problems:
            self._report(path, message, at_key)
        document = parsed.document
        if not isinstance(document, dict):
            raise _fatal(
                self.file,
                1,
                1,
                "a config must be a mapping (import_path: ... or "
                f"applications: ...), not {type(document).__name__}",
            )
        self._check_shape(document)
        for path, at_key, message in schema.check(document):
            self._report(path, message, at_key)
        self._top_dispositions(document)
        apps = self._applications(document)
        warnings = self.issues.warnings()
        if len(self.issues):
            raise ConfigError(self.issues.all(), warnings)
        shape = "multi" if "applications" in document else "single"
        config = ServeConfig(
            shape=shape,
            http=_http(document),
            applications=tuple(apps),
            document=document,
            source_file=self.file,
            warnings=tuple(str(w) for w in warnings),
        )
        return config, warnings

    def _report(self, path: DocPath, message: str, at_key: bool = False) -> None:
        (self.issues.at_key if at_key else self.issues.at_value)(path, message)

    def _dispositions(self, kind: str, mapping: Any, base: DocPath) -> None:
        def report(key: tuple[str | int, ...], message: str, severity: str) -> None:
            self.issues.at_key((*base, *key), message, severity)

        dispositions.check(kind, mapping, report)

    def _top_dispositions(self, document: Mapping[str, Any]) -> None:
        if "applications" not in document:
            return
        self._dispositions("top", document, ())
        self._dispositions("http", document.get("http_options"), ("http_options",))
        self._dispositions("grpc", document.get("grpc_options"), ("grpc_options",))

    def _check_shape(self, document: Mapping[str, Any]) -> None:
        if "applications" not in document:
            return
        for key in _SINGLE_KEYS:
            if key in document:
                self._report(
                    (key,),
                    f"'{key}' belongs to the single-application shape and "
                    "cannot be mixed with applications; move it into an application",
                    True,
                )

    # --- applications ---------------------------------------------------------------------

    def _applications(self, document: Mapping[str, Any]) -> list[ApplicationSpec]:
        if "applications" not in document:
            app = self._application("default", document, ())
            return [app] if app else []
        raw = document["applications"]
        entries = [
            (a, ("applications", i))
            for i, a in enumerate(raw if isinstance(raw, list) else [])
            if isinstance(a, dict)
        ]
        self._check_unique_apps(entries)
        built = [self._application(str(a.get("name")), a, path) for a, path in entries]
        apps = [a for a in built if a is not None]
        self._check_container_names(apps, {str(a.get("name")): path for a, path in entries})
        return apps

    def _check_unique_apps(self, entries: Sequence[tuple[dict[str, Any], DocPath]]) -> None:
        names: dict[str, DocPath] = {}
        prefixes: dict[str, str] = {}
        for app, path in entries:
            name = app.get("name")
            if isinstance(name, str) and name in names:
                self._report(
                    (*path, "name"),
                    f"application name '{name}' is used twice (first "
                    f"at {format_path(names[name])})",
                )
            if isinstance(name, str):
                names.setdefault(name, path)
            prefix = app.get("route_prefix", "/")
            if isinstance(prefix, str) and prefix in prefixes:
                self._report(
                    (*path, "route_prefix"),
                    f"route_prefix '{prefix}' is already used by application '{prefixes[prefix]}'",
                )
            if isinstance(prefix, str):
                prefixes.setdefault(prefix, str(name))

    def _check_container_names(
        self, apps: Sequence[ApplicationSpec], paths: Mapping[str, DocPath]
    ) -> None:
        """Replicas are named `serve-<instance>-<app>-<deployment>-<i>`, and both names may hold
        `-`: app `a-b` with deployment `c` and app `a` with deployment `b-c` would share names."""
        seen: dict[str, tuple[str, str]] = {}
        for app in apps:
            for dep in app.deployments:
                joined = naming.replica_stem(app.name, dep.name)
                other = seen.setdefault(joined, (app.name, dep.name))
                if other != (app.name, dep.name):
                    self._report(
                        (*paths[app.name], "name"),
                        f"deployment '{dep.name}' of application '{app.name}' and deployment "
                        f"'{other[1]}' of application '{other[0]}' would share container names "
                        f"(serve-<instance>-{joined}-<i>); rename one of them",
                    )

    def _application(
        self, name: str, raw: Mapping[str, Any], path: DocPath
    ) -> ApplicationSpec | None:
        import_path = raw.get("import_path")
        if not isinstance(import_path, str) or self.issues.has_under((*path, "import_path")):
            return None
        runtime_env = raw.get("runtime_env")
        runtime_env = runtime_env if isinstance(runtime_env, Mapping) else {}
        dirs = self._dirs(runtime_env, (*path, "runtime_env"))
        if dirs is None:
            return None
        if path:
            self._dispositions("app", raw, path)
        source = dispositions.CONFIG_MULTI if path else dispositions.CONFIG
        checks = DeploymentChecks(self.issues, self._dirs, source=source)
        found = AppCode(self.root, self.issues, self.code, self._tree, self.fetched)
        code = found.find(raw, path, dirs)
        if code is None:
            checks.entries(raw.get("deployments"), (*path, "deployments"), None)
            return None
        before = len(self.issues)
        entries = checks.entries(raw.get("deployments"), (*path, "deployments"), code)
        for dep in code.specs:
            listed = dep.name in entries
            checks.check_code(dep, is_ingress=dep.name == code.ingress, listed=listed)
        checks.app_rules(raw, path, code, entries)
        if len(self.issues) > before or self.issues.has_under(path):
            return None
        prefix = self._route_prefix(raw, path, code, entries)
        return self._build(name, raw, path, code, entries, prefix)

    def _dirs(self, runtime_env: Mapping[str, Any], path: DocPath) -> tuple[str, ...] | None:
        """(working_dir, *py_modules), each checked, or None after reporting."""
        found: list[str] = []
        ok = True
        wanted: list[tuple[Any, DocPath, str]] = [
            (
                runtime_env.get("working_dir", self.default_dir),
                (*path, "working_dir"),
                "working_dir",
            )
        ]
        modules = runtime_env.get("py_modules")
        for i, entry in enumerate(modules if isinstance(modules, list) else []):
            wanted.append((entry, (*path, "py_modules", i), "py_modules entry"))
        for value, where, key in wanted:
            if not isinstance(value, str):
                ok = False
                continue
            if remote.is_uri(value):
                ok = self._fetch(value, where, key, runtime_env) and ok
                found.append(value)
                continue
            try:
                found.append(check_dir(self.root, value, key))
            except TreeError as exc:
                self._report(where, str(exc))
                ok = False
        return tuple(found) if ok else None

    def _fetch(self, uri: str, where: DocPath, key: str, runtime_env: Mapping[str, Any]) -> bool:
        """Bring a remote working_dir / py_modules archive here (once per URI per load)."""
        if uri not in self.fetched:
            unpacked, problem, on_pin = remote.fetch_entry(uri, key, runtime_env, self.code.fetch)
            if unpacked is None:
                env_path = where[:-1] if key == "working_dir" else where[:-2]
                self._report((*env_path, remote.PIN_KEY) if on_pin else where, problem)
                return False
            self.fetched[uri] = unpacked
        return True

    def _route_prefix(
        self,
        raw: Mapping[str, Any],
        path: DocPath,
        scanned: ScannedApp,
        entries: Entries,
    ) -> str | None:
        entry = entries.get(scanned.ingress, ({}, ()))[0]
        code = scanned.specs[0].options
        if path:  # multi-application shape: the application's prefix overrides the ingress's
            found = raw.get("route_prefix", "/")
        elif "route_prefix" in entry:
            found = entry["route_prefix"]
        else:
            found = code.get("route_prefix", "/")
        return found if isinstance(found, str) else None

    # --- resolution ---------------------------------------------------------------------------

    def _build(
        self,
        name: str,
        raw: Mapping[str, Any],
        path: DocPath,
        scanned: ScannedApp,
        entries: Entries,
        prefix: str | None,
    ) -> ApplicationSpec | None:
        found = raw.get("runtime_env")
        app_env_raw: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        app_env = self._env(app_env_raw, (*path, "runtime_env"))
        args = canonical_json(raw.get("args") or {})
        specs = []
        for dep in scanned.specs:
            entry, where = entries.get(dep.name, ({}, (*path, "import_path")))
            actor_env = options.actor_runtime_env(entry, dep.options)
            merged = merge_runtime_env(app_env_raw, actor_env)
            env = {**app_env, **self._env(actor_env, (*where, "ray_actor_options", "runtime_env"))}
            tree = self._tree(merged, where if "working_dir" in actor_env else path)
            if tree is None:
                continue
            image = merged.get("image_uri")
            if isinstance(image, str) and (bad := imageref.problem(image)):
                on = (*where, "ray_actor_options") if "image_uri" in actor_env else path
                self._report((*on, "runtime_env", "image_uri"), bad)
                continue
            before = len(self.issues)
            own = any(k in actor_env for k in ("pip", "uv"))
            env_at = (*where, "ray_actor_options", "runtime_env") if own else (*path, "runtime_env")
            found_packages = packages.read_packages(merged, env_at, self.issues, self.root)
            if len(self.issues) > before:
                continue
            specs.append(
                options.build_spec(
                    app=name,
                    name=dep.name,
                    import_path=str(raw["import_path"]),
                    route_prefix=prefix,
                    is_ingress=dep.name == scanned.ingress,
                    entry=entry,
                    code=dep.options,
                    env=tuple(sorted((k, e.value) for k, e in env.items())),
                    secret_env=frozenset(k for k, e in env.items() if e.secret),
                    image=image if isinstance(image, str) else None,
                    tree=tree,
                    args=args,
                    packages=found_packages,
                    multiplexed=dep.multiplexed,
                )
            )
        if len(specs) != len(scanned.specs):
            return None
        return ApplicationSpec(
            name=name,
            route_prefix=prefix,
            import_path=str(raw["import_path"]),
            ingress=scanned.ingress,
            deployments=tuple(specs),
        )

    def _env(self, runtime_env: Mapping[str, Any], path: DocPath) -> dict[str, EnvEntry]:
        entries, problems = read_env_vars(runtime_env.get("env_vars"), self.environ)
        for name, message in problems:
            self._report((*path, "env_vars", name), message)
        return entries

    def _tree(self, runtime_env: Mapping[str, Any], path: DocPath) -> CodeTree | None:
        dirs = self._dirs(runtime_env, (*path, "runtime_env"))
        if dirs is None:
            return None
        cached = self.trees.get(dirs)
        if cached is None:
            try:
                cached = remote.build(self.root, dirs, self.fetched, self._skip)
            except TreeError as exc:
                cached = str(exc)
            self.trees[dirs] = cached
        if isinstance(cached, str):
            self._report((*path, "runtime_env", "working_dir"), cached)
            return None
        return cached

    def _skip(self, relpath: str, full: str) -> bool:
        """Config files are not code: editing num_replicas must not look like a code change."""
        return relpath == self.file or discover.is_serve_config(full)


def _http(document: Mapping[str, Any]) -> HttpOptions:
    source = document.get("http_options") if "applications" in document else document
    source = source if isinstance(source, Mapping) else {}
    timeout = source.get("request_timeout_s")
    return HttpOptions(
        host=str(source.get("host", "0.0.0.0")),
        port=int(source.get("port", 8000)),
        root_path=str(source.get("root_path", "")),
        request_timeout_s=None if timeout is None else float(timeout),
    )
