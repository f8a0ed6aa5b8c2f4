"""Hostile configs given to a running reconciler (issue 9): each is refused with a clear error in
the status, and the containers stay exactly as they were (same ids, names and states). The
loader corpus (tests/spec/invalid) covers the parsing; this covers "nothing deployed"."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import ApplicationStatus
from reconciler.runtime import labels
from reconciler.spec import MAX_BYTES
from tests.conftest import new_instance_name, remove_owned
from tests.e2e.conftest import GREETER, GREETER_CONFIG, Harness
from tests.support import free_port

pytestmark = pytest.mark.docker

BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@dataclass(frozen=True)
class Case:
    name: str
    edit: Callable[[Path, str], None]  # (repository root, the valid config) -> writes the case
    words: tuple[str, ...]  # each appears in the reported errors


def _config(text: str) -> Callable[[Path, str], None]:
    def edit(root: Path, valid: str) -> None:
        (root / "serve_config.yaml").write_text(text.replace("@VALID@", valid))

    return edit


def _sub(pattern: str, new: str) -> Callable[[Path, str], None]:
    """The valid config with one field changed."""

    def edit(root: Path, valid: str) -> None:
        text, n = re.subn(pattern, new, valid, count=1)
        assert n == 1, pattern
        (root / "serve_config.yaml").write_text(text)

    return edit


def _runtime_env(env: dict[str, Any]) -> Callable[[Path, str], None]:
    def edit(root: Path, valid: str) -> None:
        (root / "serve_config.yaml").write_text(f"{valid}runtime_env: {json.dumps(env)}\n")

    return edit


def _symlinked_config(root: Path, valid: str) -> None:
    outside = root.parent / "outside.yaml"  # a perfectly valid config, but not in the repository
    outside.write_text(valid.replace("greeting: hello", "greeting: from-outside"))
    (root / "serve_config.yaml").unlink()
    (root / "serve_config.yaml").symlink_to(outside)


def _symlinked_dir(root: Path, valid: str) -> None:
    (root / "wd").symlink_to("/")
    _runtime_env({"working_dir": "wd"})(root, valid)


CASES = [
    Case("alias_bomb", _config(BOMB), ("alias",)),
    Case("huge_file", _config("@VALID@#" + "x" * MAX_BYTES + "\n"), ("at most 1 MiB",)),
    Case("deep_nesting", _config("@VALID@x-deep: " + "[" * 5000 + "]" * 5000), ("nest",)),
    Case("config_symlink_out", _symlinked_config, ("symlink", "outside the repository")),
    Case("working_dir_root", _runtime_env({"working_dir": "/"}), ("absolute",)),
    Case("working_dir_dotdot", _runtime_env({"working_dir": "../.."}), ("leaves the repository",)),
    Case("working_dir_symlink", _symlinked_dir, ("symlink", "outside the repository")),
    Case("py_modules_dotdot", _runtime_env({"py_modules": ["../"]}), ("leaves the repository",)),
    Case("name_invalid", _sub("name: Greeter", "name: 'Gr/../eter'"), ("container name",)),
    Case("env_newline", _runtime_env({"env_vars": {"A": "x\nB=y"}}), ("newline",)),
    Case("port_too_big", _sub(r"port: \d+", "port: 70000"), ("65535",)),
    Case("port_zero", _sub(r"port: \d+", "port: 0"), ("at least 1",)),
    Case("image_option", _runtime_env({"image_uri": "--privileged"}), ("command-line option",)),
    Case("image_space", _runtime_env({"image_uri": "a b"}), ("whitespace",)),
    Case("image_upper", _runtime_env({"image_uri": "UPPER/case"}), ("lowercase",)),
    Case("image_300", _runtime_env({"image_uri": "x" * 300}), ("255",)),
]


class Running:
    """One converged Harness shared by every case (one deployment up is all the cases need)."""

    def __init__(self, root: Path, h: Harness, valid: str, docker_client: Any) -> None:
        self.root, self.h, self.valid, self.client = root, h, valid, docker_client

    def containers(self) -> dict[str, tuple[str, str]]:
        found = self.client.containers.list(
            all=True, filters={"label": f"{labels.OWNER}={self.h.instance}"}
        )
        return {c.id: (c.name, c.status) for c in found}

    def reset(self) -> None:
        for entry in self.root.iterdir():
            if entry.name != "greeter.py":
                entry.unlink() if entry.is_file() or entry.is_symlink() else None
        (self.root / "serve_config.yaml").write_text(self.valid)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("hostile")
    root = tmp / "repo"
    root.mkdir()
    (root / "greeter.py").write_text(GREETER)
    valid = GREETER_CONFIG.format(port=free_port()).replace("num_cpus: 0.2", "num_cpus: 0.05")
    (root / "serve_config.yaml").write_text(valid)
    instance = new_instance_name()
    h = Harness(root, instance)
    try:
        h.converge()
        yield Running(root, h, valid, docker_client)
    finally:
        remove_owned(docker_client, instance)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_config_is_refused_and_nothing_changes(running: Running, case: Case) -> None:
    before = running.containers()
    assert len(before) == 3, before  # two replicas and the ingress
    case.edit(running.root, running.valid)
    try:
        for _ in range(2):  # a second pass must not act on it either
            running.h.reconciler.run_pass()
        snap = running.h.reconciler.snapshot
        assert snap.commits.outcome == "invalid", running.h.describe()
        errors = "\n".join(snap.commits.errors)
        print(f"{case.name}: {errors[:300]}")
        assert errors and "internal error" not in errors
        for word in case.words:
            assert word in errors, errors
        assert "from-outside" not in errors and "lollol" not in errors
        app = snap.applications[0]
        assert app.status is ApplicationStatus.DEPLOY_FAILED
        assert "was not applied" in app.message
        assert running.containers() == before
    finally:
        running.reset()
    running.h.reconciler.run_pass()
    assert running.h.reconciler.snapshot.commits.outcome == "applied"
    assert running.containers() == before
