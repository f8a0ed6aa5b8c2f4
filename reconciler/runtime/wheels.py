"""Resolve a deployment's runtime_env.pip on the reconciler's host, into wheels an image build
installs offline (`pip install --no-index --find-links`): the build has no network, and many
production hosts' containers reach no package index either.

`pip wheel` (it builds sdists into wheels) when the image's interpreter is the host's (same
implementation, Python version, machine and libc); else `pip download --only-binary=:all:` for
the image's `--python-version/--platform/--implementation/--abi`. The host's pip settings apply:
`--pip-index-url`, `--pip-extra-index-url`, `--pip-find-links` and any PIP_* variable of the
reconciler's environment. Results are cached under `<cache>/wheels/<key>/`, keyed by the
requirement set, the target interpreter and the index settings, so a requirement set resolves
once (an unpinned requirement stays at the version first resolved until the set changes).

The pip that installs them in the build comes along as a wheel (Python's bundled ensurepip wheel,
else downloaded): an image needs python3, not pip.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ConfigError, ConfigIssue, EngineError, PackagesUnavailable
from reconciler.model import PackageSet, Requirement, short_hash

Progress = Callable[[str], None]
REFUSED_TTL_S = 60.0  # a requirement set pip could not resolve is asked again after this

# Runs in the image (and on the host) to say which wheels fit its interpreter.
PROBE = r"""
import json, platform, sys
impl = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, sys.implementation.name)
major, minor = sys.version_info[:2]
machine = platform.machine()
libc, libc_version = platform.libc_ver()
platforms = []
if sys.platform.startswith("linux"):
    if libc == "glibc" and libc_version.count(".") >= 1:
        g_major, g_minor = (int(x) for x in libc_version.split(".")[:2])
        platforms += [f"manylinux_{g_major}_{m}_{machine}" for m in range(g_minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        platforms += [f"{n}_{machine}" for m, n in legacy.items() if g_major == 2 and g_minor >= m]
    platforms.append(f"linux_{machine}")
print(json.dumps({"implementation": impl, "version": f"{major}.{minor}",
                  "abi": f"{impl}{major}{minor}", "machine": machine,
                  "libc": f"{libc} {libc_version}", "platforms": platforms}))
"""
_NETWORK = re.compile(
    r"NewConnectionError|Failed to establish a new connection|ConnectTimeout|ReadTimeout|"
    r"Temporary failure in name resolution|Name or service not known|Connection refused|"
    r"Max retries exceeded|Connection reset|Network is unreachable|HTTP error 5\d\d|"
    r"ProxyError|SSLError|Could not fetch URL",
    re.IGNORECASE,
)
_WANTED = re.compile(
    r"(?:No matching distribution found for|satisfies the requirement)\s+(\S+)", re.IGNORECASE
)
_USERINFO = re.compile(r"//[^/@\s]*@")
_SHOWN = ("Collecting", "Downloading", "Saved", "Building wheel", "Processing", "Obtaining")


def scrub(text: str) -> str:
    return _USERINFO.sub("//", text)


@dataclass(frozen=True)
class Interpreter:
    """What wheels an interpreter takes (the PROBE's answer)."""

    implementation: str
    version: str
    abi: str
    machine: str
    libc: str
    platforms: tuple[str, ...]

    @classmethod
    def from_json(cls, text: str) -> Interpreter:
        data = json.loads(text)
        return cls(
            str(data["implementation"]),
            str(data["version"]),
            str(data["abi"]),
            str(data["machine"]),
            str(data["libc"]),
            tuple(str(p) for p in data["platforms"]),
        )


@dataclass(frozen=True)
class PipSettings:
    """How the host's pip reaches packages. Credentials may sit in index URLs: never logged."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    timeout_s: float = 900.0
    python: str = sys.executable

    def flags(self) -> list[str]:
        flags = ["--index-url", self.index_url] if self.index_url else []
        for url in self.extra_index_urls:
            flags += ["--extra-index-url", url]
        for link in self.find_links:
            flags += ["--find-links", link]
        return flags


@dataclass(frozen=True)
class Wheels:
    """A resolved requirement set: a directory of wheels, requirements.txt and the installer."""

    directory: Path
    files: tuple[tuple[str, str], ...]  # (wheel file name, sha256), sorted
    installer: str  # file name of the pip wheel under directory/installer/

    @property
    def digest(self) -> str:
        return short_hash(*(f"{name}={sha}" for name, sha in self.files), self.installer)


_host: Interpreter | None = None


def host_interpreter(python: str = sys.executable) -> Interpreter:
    global _host
    if _host is None:
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, check=True)
        _host = Interpreter.from_json(out.stdout)
    return _host


class WheelResolver:
    def __init__(self, cache_dir: Path, settings: PipSettings) -> None:
        self._dir = Path(cache_dir) / "wheels"
        self._settings = settings
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        # Requirement sets pip refused lately: `up` prepares again on every pass until the
        # config changes, and asking the index the same question each second helps no one.
        self._refused: dict[str, tuple[float, ConfigError]] = {}
        self.resolutions = 0  # pip runs (tests count them)

    def resolve(self, packages: PackageSet, target: Interpreter, progress: Progress) -> Wheels:
        same = _compatible(target, host_interpreter(self._settings.python))
        key = short_hash(
            *packages.lines,
            packages.pip_version or "",
            json.dumps(target.__dict__, sort_keys=True),
            str(same),
            *self._settings.flags(),
        )
        with self._lock(key):
            entry = self._dir / key
            done = entry / "resolved.json"
            if not done.is_file():
                refused = self._refused.get(key)
                if refused is not None and time.monotonic() - refused[0] < REFUSED_TTL_S:
                    raise refused[1]
                try:
                    self._resolve_into(entry, packages, target, same, progress)
                except ConfigError as exc:
                    self._refused[key] = (time.monotonic(), exc)
                    raise
            data = json.loads(done.read_text())
        return Wheels(entry, tuple((n, s) for n, s in data["files"]), data["installer"])

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _resolve_into(
        self,
        entry: Path,
        packages: PackageSet,
        target: Interpreter,
        same: bool,
        progress: Progress,
    ) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(dir=self._dir, prefix=".resolve-"))
        try:
            (staged / "requirements.txt").write_text("\n".join(packages.lines) + "\n")
            self.resolutions += 1
            self._pip(_resolve_args(staged, target, same), packages, progress)
            installer = self._installer(staged / "installer", packages, target, same, progress)
            files = sorted(
                (p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in staged.glob("*.whl")
            )
            record = {"files": files, "installer": installer}
            (staged / "resolved.json").write_text(json.dumps(record))
            shutil.rmtree(entry, ignore_errors=True)
            os.rename(staged, entry)
        finally:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)

    def _installer(
        self, into: Path, packages: PackageSet, target: Interpreter, same: bool, progress: Progress
    ) -> str:
        into.mkdir()
        bundled = _bundled_pip() if packages.pip_version is None else None
        if bundled is not None:
            shutil.copy(bundled, into / bundled.name)
            return bundled.name
        wanted = f"pip{packages.pip_version}" if packages.pip_version else f"pip=={_host_pip()}"
        args = ["download", "--no-deps", "--only-binary=:all:", "--dest", str(into), wanted]
        self._pip(args, packages, progress, pip_version=True)
        found = sorted(into.glob("pip-*.whl"))
        if not found:
            raise EngineError(f"pip downloaded no wheel for {wanted}")
        return found[-1].name

    def _pip(
        self,
        args: Sequence[str],
        packages: PackageSet,
        progress: Progress,
        *,
        pip_version: bool = False,
    ) -> None:
        command = [self._settings.python, "-m", "pip", *args, *self._settings.flags()]
        env = {
            **os.environ,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_PROGRESS_BAR": "off",
        }
        lines = _run(command, env, self._settings.timeout_s, progress)
        if lines is None:
            return
        text = scrub("\n".join(lines))
        if _NETWORK.search(text):
            tail = "\n".join(_errors(lines)[-3:] or lines[-3:])
            raise PackagesUnavailable(f"could not reach the package index: {scrub(tail)}")
        raise ConfigError([_issue(packages, lines, pip_version=pip_version)])


def _resolve_args(staged: Path, target: Interpreter, same: bool) -> list[str]:
    reqs = str(staged / "requirements.txt")
    if same:
        return ["wheel", "--wheel-dir", str(staged), "-r", reqs]
    args = ["download", "--dest", str(staged), "--only-binary=:all:"]
    args += ["--implementation", target.implementation, "--python-version", target.version]
    args += ["--abi", target.abi, "--abi", "abi3", "--abi", "none"]
    for platform in target.platforms:
        args += ["--platform", platform]
    return [*args, "-r", reqs]


def _run(
    command: list[str], env: dict[str, str], timeout_s: float, progress: Progress
) -> list[str] | None:
    """pip's output lines when it failed, None when it succeeded; its lines go to `progress`."""
    try:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
    except OSError as exc:
        raise EngineError(f"cannot run pip on the reconciler's host: {exc}") from None
    lines: list[str] = []
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = scrub(raw.rstrip())
            lines.append(line)
            if line.startswith(_SHOWN):
                progress(line)
        code = proc.wait()
    finally:
        timer.cancel()
    if code == 0:
        return None
    if code < 0:
        raise PackagesUnavailable(f"pip took longer than {timeout_s:g}s to resolve the packages")
    if any("No module named pip" in line for line in lines):
        raise EngineError(
            "pip is needed on the reconciler's host to resolve runtime_env.pip "
            f"({command[0]} -m pip: No module named pip)"
        )
    return lines


def _errors(lines: Sequence[str]) -> list[str]:
    return [line for line in lines if line.startswith("ERROR")]


def _issue(packages: PackageSet, lines: Sequence[str], *, pip_version: bool) -> ConfigIssue:
    """Where the failure goes: the requirement pip names, else the pip key; pip's own words."""
    tail = "\n".join(_errors(lines)[-4:] or lines[-4:])
    named = _WANTED.search(tail)
    found: Requirement | None = None
    if named:
        wanted = _name(named.group(1))
        found = next((r for r in packages.requirements if r.name == wanted), None)
    if found is not None:
        message = f"cannot install '{found.text}':\n{tail}"
        return ConfigIssue(found.file, found.line, found.column, found.path, message)
    what = "the pip that installs them (pip_version)" if pip_version else "the packages"
    message = f"cannot resolve {what}:\n{tail}"
    return ConfigIssue(packages.file, packages.line, packages.column, packages.path, message)


def _name(text: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", text)
    return re.sub(r"[-_.]+", "-", match.group()).lower() if match else ""


def _compatible(target: Interpreter, host: Interpreter) -> bool:
    return (target.implementation, target.version, target.machine, target.libc) == (
        host.implementation,
        host.version,
        host.machine,
        host.libc,
    )


def _bundled_pip() -> Path | None:
    """The pip wheel Python ships for ensurepip (absent where a distribution strips it)."""
    with contextlib.suppress(Exception):  # some distributions patch it to refuse
        import ensurepip

        found = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
        return found[-1] if found else None
    return None


def _host_pip() -> str:
    try:
        return importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        raise EngineError(
            "pip is needed on the reconciler's host to resolve runtime_env.pip"
        ) from None
