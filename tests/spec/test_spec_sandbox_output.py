"""What a sandbox run printed, read as the reconciler's answer or error (pure functions)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from reconciler.errors import CodeBuildError
from reconciler.model import CodeTree
from reconciler.runtime.bundle import build_bundle
from reconciler.runtime.sandbox import split_bundle
from reconciler.runtime.sandbox_output import failure, locate, parse_answer, timed_out

ANSWER = {
    "ingress": "Chain",
    "deployments": [
        {"name": "Model", "class_name": "Model", "options": {"num_replicas": 2},
         "methods": ["predict"], "has_reconfigure": True},
        {"name": "Chain", "class_name": "Chain", "is_function": False, "options": {}},
    ],
}  # fmt: skip

TRACEBACK = """Traceback (most recent call last):
  File "/opt/serve/serve_replica/describe.py", line 80, in main
  File "/app/work/shop/app.py", line 3, in <module>
    import helpers
  File "/app/py_modules/helpers/__init__.py", line 7, in <module>
    raise KeyError("x")
KeyError: 'x'
"""


def test_the_answer_is_the_last_json_line_after_the_users_own_prints() -> None:
    stdout = "loading...\n{not json\n" + json.dumps(ANSWER) + "\n"
    built = parse_answer(stdout)
    assert built.ingress == "Chain" and [d.name for d in built.deployments] == ["Model", "Chain"]
    model = built.deployment("Model")
    assert model is not None and model.options == {"num_replicas": 2} and model.has_reconfigure
    assert model.methods == ("predict",)


@pytest.mark.parametrize(
    "stdout",
    ["", "hello\n", '{"ingress": 3, "deployments": []}', '{"ingress": "A", "deployments": [1]}'],
)
def test_no_usable_answer_is_a_build_error(stdout: str) -> None:
    with pytest.raises(CodeBuildError):
        parse_answer(stdout)


def test_the_innermost_frame_of_the_users_code_maps_to_the_repository() -> None:
    assert locate(TRACEBACK, ("code", "libs/helpers")) == ("libs/helpers/__init__.py", 7)
    assert locate(TRACEBACK.replace("/app/py_modules/helpers", "/opt/serve/x"), (".",)) == (
        "shop/app.py",
        3,
    )
    assert locate("no traceback", (".",)) == ("", 0)


def _failure(stderr: str, *, exit_code: int = 1, oom_killed: bool = False) -> CodeBuildError:
    return failure(
        stderr,
        exit_code=exit_code,
        oom_killed=oom_killed,
        import_path="shop:app",
        dirs=(".",),
        memory_mib=512,
        pids=128,
    )


def test_failures_name_the_limit_they_hit() -> None:
    assert (
        "512 MiB, the sandbox's memory limit"
        in _failure("", exit_code=137, oom_killed=True).message
    )
    assert "memory limit" in _failure("Traceback...\nMemoryError\n").message
    network = _failure("OSError: [Errno 101] Network is unreachable\n").message
    assert "tried to use the network, and the sandbox has none" in network
    forks = _failure("BlockingIOError: [Errno 11] Resource temporarily unavailable\n  File x\n")
    assert "more than 128 processes or threads" in forks.message
    plain = _failure(TRACEBACK)
    assert plain.message == "importing shop:app failed: KeyError: 'x'"
    assert "within 60 s, the sandbox's time limit" in timed_out("shop:app", 60).message
    assert "no error output" in _failure("").message


def test_the_bundle_splits_into_the_runtime_and_the_code(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    tree = CodeTree(root=str(tmp_path), dirs=(".",), files=(("app.py", "h"),))
    runtime, code = split_bundle(build_bundle(tree))
    with tarfile.open(fileobj=io.BytesIO(runtime)) as tar:
        assert "serve_replica/__main__.py" in tar.getnames()
    with tarfile.open(fileobj=io.BytesIO(code)) as tar:
        names = tar.getnames()
        assert "work/app.py" in names and not any(n.startswith(("opt", "app/")) for n in names)
