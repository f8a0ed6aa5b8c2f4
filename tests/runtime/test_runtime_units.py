"""Fast unit tests of the pure parts: names, error text, the code bundle, container settings,
and the replica runtime's graph building and response encoding (in-process)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
from runtime_support import make_spec

from reconciler import naming
from reconciler.errors import EngineError
from reconciler.model import CodeTree, Resources
from reconciler.replica.serve_replica import api, graph, request, responses
from reconciler.runtime import containers, errortext, labels, secret_env
from reconciler.runtime.bundle import build_bundle


def test_names_are_docker_safe_deterministic_and_distinct() -> None:
    assert naming.replica_name("prod", "default", "Mango", 2) == "serve-prod-default-Mango-2"
    odd_a = naming.replica_name("prod", "my app/x", "Mango", 0)
    odd_b = naming.replica_name("prod", "my-app-x", "Mango", 0)
    assert odd_a == naming.replica_name("prod", "my app/x", "Mango", 0)
    assert odd_a != odd_b and " " not in odd_a and "/" not in odd_a
    # rounded up: a drain never gets less than its timeout (int() cut up to a second off)
    assert naming.drain_deadline(naming.drain_name("serve-p-a-b-0", 1700000000.2)) == 1700000001
    assert naming.drain_deadline("/serve-p-a-b-0") is None
    assert naming.drain_deadline(naming.replica_name("p", "a--drain-5", "b", 0)) is None


@pytest.mark.parametrize(
    "part",
    ["cache--drain", "x--drain--drain-5", "cache-", "-drain", "a---b", "--drain-1", "a b--drain"],
)
def test_no_name_part_reads_as_a_drained_container(part: str) -> None:
    # `serve-p-shop-cache--drain-0` was taken for a drained replica and removed every pass
    for name in (
        naming.replica_name("p", "shop", part, 0),
        naming.replica_name("p", part, "d", 3),
        naming.replica_name(part, "shop", "d", 0),
    ):
        assert naming.DRAIN_MARK not in name and naming.drain_deadline(name) is None, name
    assert naming.clean(part) != naming.clean(part.replace("-", "_"))


TRACEBACK = """[serve] starting
Traceback (most recent call last):
  File "/opt/serve/serve_replica/__main__.py", line 50, in main
    replica.initialize()
ValueError: first

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/work/shop.py", line 3, in __init__
shop.StandError: no fruit today
"""


def test_user_error_is_the_exception_line_of_the_last_traceback() -> None:
    assert errortext.user_error(TRACEBACK, 1) == "shop.StandError: no fruit today (exit code 1)"
    request_noise = TRACEBACK + "[request] Traceback (most recent call last):\n[request] X: y\n"
    assert errortext.user_error(request_noise, 1).startswith("shop.StandError")
    assert errortext.user_error("log\nKeyError: 'x'\nbye\n", 2) == "KeyError: 'x' (exit code 2)"
    assert errortext.user_error("just words\n", 137) == "just words (exit code 137)"
    assert errortext.user_error("", None) == "replica exited (exited) with no output"
    assert errortext.exit_code("Exited (137) 2 seconds ago") == 137


def _names(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_bundle_holds_runtime_working_dir_and_py_modules(tmp_path: Path) -> None:
    (tmp_path / "app" / "pkg").mkdir(parents=True)
    (tmp_path / "app" / "main.py").write_text("x = 1\n")
    (tmp_path / "app" / "pkg" / "m.py").write_text("")
    (tmp_path / "libs" / "util").mkdir(parents=True)
    (tmp_path / "libs" / "util" / "__init__.py").write_text("")
    os.symlink("main.py", tmp_path / "app" / "alias.py")
    code = CodeTree(root=str(tmp_path), dirs=("app", "libs/util"), files=())
    members = _names(build_bundle(code))
    for name in (
        "opt/serve/serve_replica/__main__.py",
        "opt/serve/ray/serve/__init__.py",
        "app/work/main.py",
        "app/work/pkg/m.py",
        "app/py_modules/util/__init__.py",
    ):
        assert name in members, name
    assert members["app/work/alias.py"].isfile()  # an inner symlink is copied as its file
    assert members["app/work/main.py"].mode == 0o644 and members["app/work/pkg"].mode == 0o755
    assert build_bundle(code) == build_bundle(code)


def test_bundle_refuses_symlinks_and_dirs_outside_the_repository(tmp_path: Path) -> None:
    (tmp_path / "repo" / "app").mkdir(parents=True)
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", tmp_path / "repo" / "app" / "leak")
    with pytest.raises(EngineError, match="symlink that leaves the repository"):
        build_bundle(CodeTree(root=str(tmp_path / "repo"), dirs=("app",), files=()))
    with pytest.raises(EngineError, match="not a directory inside the repository"):
        build_bundle(CodeTree(root=str(tmp_path / "repo"), dirs=("..",), files=()))


def test_container_settings_from_the_spec(code_tree: CodeTree) -> None:
    spec = make_spec(
        code_tree,
        env=(("PYTHONPATH", "/extra"), ("SERVE_APP", "spoofed"), ("TOKEN", "t")),
        resources=Resources(num_cpus=0.5, num_gpus=1, memory=256 * 2**20),
        user_config={"price": 3},
    )
    env = containers.replica_env(spec, 1, "http://router:8001")
    assert env["SERVE_APP"] == "default" and env["TOKEN"] == "t"
    assert env["PYTHONPATH"] == "/opt/serve:/opt/serve-deps:/extra"
    assert env["SERVE_USER_CONFIG"] == '{"price":3}'
    assert env["SERVE_USER_CONFIG_HASH"] == spec.user_config_hash
    host = containers.replica_host_config(spec, "net", "127.0.0.1")
    assert host["cpu_shares"] == 512 and host["mem_reservation"] == 256 * 2**20
    assert "nano_cpus" not in host and "mem_limit" not in host  # logical, as in Ray
    hard = containers.replica_host_config(spec, "net", "127.0.0.1", hard_limits=True)
    assert hard["nano_cpus"] == 500_000_000 and hard["mem_limit"] == 256 * 2**20
    assert host["device_requests"][0]["Count"] == 1
    assert host["cap_drop"] == ["ALL"] and host["privileged"] is False
    lab = containers.replica_labels("inst", spec, 1)
    assert lab[labels.OWNER] == "inst" and lab[labels.VERSION] == spec.version
    held = containers.demand_from_label(lab[labels.DEMAND])
    assert held is not None and (held.cpus, held.memory, held.gpus) == (0.5, 256 * 2**20, 1.0)
    assert containers.demand_from_label("not json") is None
    assert containers.health_settings(lab) == (
        spec.health_check_period_s,
        spec.health_check_timeout_s,
    )
    assert containers.health_settings({}) == (10.0, 30.0)  # made by an older reconciler
    bad = {labels.HEALTH_CHECK_PERIOD: "nan", labels.HEALTH_CHECK_TIMEOUT: "x"}
    assert containers.health_settings(bad) == (10.0, 30.0)


def test_secret_env_values_go_in_a_file_only_the_replica_reads(code_tree: CodeTree) -> None:
    # the container's Env is what `docker inspect` (and any dashboard on the engine's API) shows
    spec = make_spec(
        code_tree, env=(("PLAIN", "p"), ("TOKEN", "t0p-s3cret")), secret_env=frozenset({"TOKEN"})
    )
    env = containers.replica_env(spec, 0, "http://router:8001")
    assert env["PLAIN"] == "p" and "TOKEN" not in env
    assert "t0p-s3cret" not in json.dumps(env)
    assert env["SERVE_SECRET_ENV_FILE"] == secret_env.SECRET_ENV_FILE
    secret = containers.replica_secrets(spec)
    members = _names(secret_env.secret_env_tar(secret))
    folder, file = members["run/serve-secrets"], members["run/serve-secrets/env.json"]
    assert folder.isdir() and folder.mode == 0o700 and file.mode == 0o400
    assert {folder.uid, folder.gid, file.uid, file.gid} == {int(containers.USER.split(":")[0])}
    with tarfile.open(fileobj=io.BytesIO(secret_env.secret_env_tar(secret))) as tar:
        assert json.load(tar.extractfile("run/serve-secrets/env.json")) == {"TOKEN": "t0p-s3cret"}
    # a user's own SERVE_SECRET_ENV_FILE never names a file to load
    plain_only = make_spec(code_tree, env=(("SERVE_SECRET_ENV_FILE", "/etc/passwd"),))
    assert containers.replica_env(plain_only, 0, "http://r:8001")["SERVE_SECRET_ENV_FILE"] == ""
    # nor does a secret move what the runtime sets (ours win, as for plain values)
    hijack = make_spec(
        code_tree,
        env=(("SERVE_HTTP_PORT", "9"), ("PYTHONPATH", "/x"), ("TOKEN", "t")),
        secret_env=frozenset({"SERVE_HTTP_PORT", "PYTHONPATH", "TOKEN"}),
    )
    assert containers.replica_secrets(hijack) == {"TOKEN": "t"}
    only_reserved = replace(hijack, env=(("SERVE_HTTP_PORT", "9"),))
    assert containers.replica_env(only_reserved, 0, "http://r:8001")["SERVE_SECRET_ENV_FILE"] == ""


def test_graph_names_nodes_like_serve_and_builds_handles() -> None:
    @api.deployment
    class Leaf:
        pass

    @api.deployment(name="Top", num_replicas=2)
    class Root:
        pass

    first, second = Leaf.bind(1), Leaf.bind(2)
    root = Root.bind(first, {"b": second}, other=first)
    names = sorted(n for n, _ in graph.name_nodes(root).values())
    assert names == ["Leaf", "Leaf_1", "Top"]
    args, kwargs = graph.resolve_args(root, root, lambda name: f"handle:{name}")
    assert args == ("handle:Leaf", {"b": "handle:Leaf_1"}) and kwargs == {"other": "handle:Leaf"}
    assert graph.find_node(root, "Leaf_1") is second
    with pytest.raises(LookupError):
        graph.find_node(root, "Missing")
    renamed = Leaf.options(name="Other").bind()
    assert graph.name_nodes(renamed)[id(renamed)][0] == "Other"
    with pytest.raises(TypeError, match="unknown deployment option"):
        api.deployment(bogus=1)


def test_import_targets_and_app_builders() -> None:
    assert graph.import_target("os.path:join") is os.path.join
    assert graph.import_target("os.path.join") is os.path.join
    dep = api.deployment(lambda request: request)
    assert graph.to_application(dep, {}).deployment is dep
    built = graph.to_application(lambda args: dep.bind(args["x"]), {"x": 5})
    assert built.args == (5,)
    with pytest.raises(TypeError):
        graph.to_application(42, {})


def test_response_encoding_follows_serve() -> None:
    assert responses.encode(b"x") == (b"text/plain", b"x")
    assert responses.encode("é") == (b"text/plain; charset=utf-8", "é".encode())
    assert responses.encode({"a": 1}) == (b"application/json", b'{"a":1}')
    assert responses.encode(None) == (b"text/plain", b"")
    assert request.error_body(KeyError("k")) == {"error": "'k'", "type": "KeyError"}
    headers = request.Headers([("X-A", "1"), ("x-a", "2")])
    assert headers["x-A"] == "1, 2" and "X-a" in headers and headers.getlist("x-a") == ["1", "2"]


def test_duplicate_networks_are_ordered_by_creation_time_not_text() -> None:
    from reconciler.runtime.docker_engine import created_order

    made = [  # Docker trims trailing zeros of the nanoseconds: as text, .12Z sorts after .1234Z
        {"Created": "2026-11-27T08:00:00.12Z", "Id": "third"},
        {"Created": "2026-11-27T08:00:00.1234Z", "Id": "fourth"},
        {"Created": "2026-11-27T08:00:00Z", "Id": "second"},
        {"Created": "2026-11-27T07:59:59.999999999Z", "Id": "first"},
    ]
    assert [n["Id"] for n in sorted(made, key=created_order)] == [
        "first",
        "second",
        "third",
        "fourth",
    ]
