"""The deployments of one application: the config's `deployments` entries matched by name to
the code's, and every check of their options, the config's and the code's alike: the schema's,
`options` (pairs that exclude each other, bounds), `dispositions` (fields with no effect here,
or not supported) and `resolved` (what only the combination decides). Issues about the code
point into it (file and line of the option); the rest point into the config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.errors import ERROR, ConfigIssue
from reconciler.spec import dispositions, options, resolved, schema
from reconciler.spec.codescan import ScannedApp, ScannedDeployment
from reconciler.spec.issues import DocPath, Issues, did_you_mean, format_path

Entries = dict[str, tuple[Mapping[str, Any], DocPath]]
DirsCheck = Callable[[Mapping[str, Any], DocPath], object]


class DeploymentChecks:
    def __init__(self, issues: Issues, check_dirs: DirsCheck, *, source: str) -> None:
        self.issues = issues
        self.check_dirs = check_dirs
        self.source = source  # dispositions.CONFIG or CONFIG_MULTI

    def entries(self, raw: Any, path: DocPath, code: ScannedApp | None) -> Entries:
        """The config's entries by name. `code` None: the graph is not known (only what the
        config alone decides is checked)."""
        found: Entries = {}
        for i, entry in enumerate(raw if isinstance(raw, list) else []):
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str):
                continue
            where = (*path, i)
            if name in found:
                self._at(
                    (*where, "name"),
                    f"deployment '{name}' is listed twice (first at {format_path(found[name][1])})",
                )
                continue
            found[name] = (entry, where)
            if code is not None and name not in code.deployments:
                self._at((*where, "name"), _unknown_deployment(name, code))
                continue
            self._check_entry(entry, where, code, name)
        return found

    def _check_entry(
        self, entry: Mapping[str, Any], where: DocPath, code: ScannedApp | None, name: str
    ) -> None:
        is_ingress = code is None or name == code.ingress
        options.check_options(entry, is_ingress=is_ingress, report=self._reporter(where))
        dispositions.check_deployment(entry, self._disposition(where), source=self.source)
        actor_env = options.actor_runtime_env(entry, {})
        if "working_dir" in actor_env or "py_modules" in actor_env:
            self.check_dirs(actor_env, (*where, "ray_actor_options", "runtime_env"))
        dep = code.deployment(name) if code is not None else None
        resolved.check(
            entry,
            dep.options if dep is not None else None,
            dep,
            self._resolved(where, dep),
        )

    def check_code(self, dep: ScannedDeployment, *, is_ingress: bool, listed: bool) -> None:
        """The code's options obey the same rules as the config's; issues point into the code.
        `listed`: the config has an entry for it (then the combined checks ran there)."""
        code = {k: v for k, v in dep.options.items() if k not in options.CODE_ONLY}
        report = self._code_reporter(dep)
        for path, _at_key, message in schema.check({"name": dep.name, **code}, "deployment"):
            report(path, message, ERROR)
        options.check_options(code, is_ingress=is_ingress, report=lambda k, m, _a: report(k, m))
        dispositions.check_deployment(code, report, source=dispositions.CODE)
        if not listed:
            resolved.check({}, dep.options, dep, lambda _c, k, m: report(k, m))

    def app_rules(
        self, raw: Mapping[str, Any], path: DocPath, code: ScannedApp, found: Entries
    ) -> None:
        """Serve's rules about an application as a whole."""
        if raw.get("external_scaler_enabled") is True:
            scaled = [n for n, (e, _) in found.items() if _autoscaled(e)]
            if scaled:
                self._at(
                    (*path, "external_scaler_enabled"),
                    "external_scaler_enabled cannot be combined with autoscaling (Serve refuses "
                    f"it): deployment{'s' if len(scaled) > 1 else ''} {', '.join(scaled)} "
                    "configure autoscaling",
                )
        asgi = [d.name for d in code.specs if d.asgi]
        if len(asgi) > 1:
            self._at(
                (*path, "import_path"),
                f"the application has {len(asgi)} deployments with @serve.ingress "
                f"({', '.join(asgi)}); Serve allows one per application",
            )

    # --- where issues go ----------------------------------------------------------------------

    def _at(self, path: DocPath, message: str) -> None:
        self.issues.at_value(path, message)

    def _reporter(self, base: DocPath) -> options.Report:
        def report(key: tuple[str | int, ...], message: str, at_key: bool) -> None:
            (self.issues.at_key if at_key else self.issues.at_value)((*base, *key), message)

        return report

    def _disposition(self, base: DocPath) -> dispositions.Report:
        def report(key: tuple[str | int, ...], message: str, severity: str) -> None:
            self.issues.at_key((*base, *key), message, severity)

        return report

    def _resolved(self, where: DocPath, dep: ScannedDeployment | None) -> resolved.Report:
        code_report = self._code_reporter(dep) if dep is not None else None

        def report(from_config: bool, key: tuple[str | int, ...], message: str) -> None:
            if from_config or code_report is None:
                self.issues.at_value((*where, *key), message)
            else:
                code_report(key, message)

        return report

    def _code_reporter(self, dep: ScannedDeployment) -> Callable[..., None]:
        def report(key: tuple[str | int, ...], message: str, severity: str = ERROR) -> None:
            line = dep.option_lines.get(str(key[0]), dep.line) if key else dep.line
            text = f"@serve.deployment options of {dep.class_name}: {message}"
            self.issues.add(ConfigIssue(dep.file, line, 0, "", text, severity))

        return report


def _unknown_deployment(name: str, code: ScannedApp) -> str:
    have = ", ".join(code.deployments)
    return (
        f"no deployment named '{name}' in the application's graph (it has {have})"
        f"{did_you_mean(name, code.deployments)}"
    )


def _autoscaled(entry: Mapping[str, Any]) -> bool:
    return entry.get("num_replicas") == "auto" or entry.get("autoscaling_config") is not None
