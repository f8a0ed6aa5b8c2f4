"""The sandboxed graph build on the real engine: options held in variables and builders with
args come out right, hostile modules are stopped with an error that names the limit they hit
(and nothing on the host ran them), answers are cached, and nothing is left behind."""

from __future__ import annotations

import io
import shutil
import tarfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import CodeBuildError
from reconciler.runtime import labels
from reconciler.runtime.sandbox import SandboxGraphBuilder, SandboxLimits
from reconciler.spec import load_config, validate_file
from reconciler.spec.codetree import build_tree
from tests.conftest import BASE_IMAGE
from tests.spec.sandbox.support import leftovers, runtime_with_describe
from tests.spec.test_spec_corpus import VALID, expectation

pytestmark = pytest.mark.docker


@pytest.fixture
def sandbox(
    docker_client: Any, instance_name: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxGraphBuilder]:
    runtime = runtime_with_describe(tmp_path_factory.mktemp("runtime"))
    builder = SandboxGraphBuilder(
        instance=instance_name,
        default_image=BASE_IMAGE,
        runtime_dir=runtime,
        limits=SandboxLimits(wall_s=20),
    )
    yield builder
    assert leftovers(docker_client, instance_name) == []


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(VALID, root)
    return root


def test_options_from_variables_and_builder_args(
    sandbox: SandboxGraphBuilder, corpus: Path
) -> None:
    config = load_config(corpus, "options_from_code.yaml", graph_builder=sandbox)
    by_name = {d.name: d for d in config.deployments()}
    stand, market = by_name["Stand"], by_name["Market"]
    assert (stand.num_replicas, stand.user_config) == (2, {"price": 7})
    assert market.autoscaling_config is not None
    assert market.autoscaling_config.max_replicas == 6  # MAX_REPLICAS from the config's env_vars
    built = load_config(corpus, "builder_args.yaml", graph_builder=sandbox)
    (greeter,) = built.deployments()
    assert (greeter.name, greeter.num_replicas) == ("Greeter", 3)
    assert greeter.args == '{"greeting":"hej","replicas":3}'
    assert sandbox.runs == 2
    load_config(corpus, "options_from_code.yaml", graph_builder=sandbox)
    load_config(corpus, "builder_args.yaml", graph_builder=sandbox)
    assert sandbox.runs == 2, "an unchanged commit must not start a sandbox again"
    (corpus / "builder_args.yaml").write_text(
        (corpus / "builder_args.yaml").read_text().replace("replicas: 3", "replicas: 4")
    )
    again = load_config(corpus, "builder_args.yaml", graph_builder=sandbox)
    assert next(again.deployments()).num_replicas == 4 and sandbox.runs == 3


def test_the_corpus_sandbox_verdicts(sandbox: SandboxGraphBuilder) -> None:
    cases = [p for p in sorted(VALID.glob("*.yaml")) if expectation(p).sandbox is not None]
    assert len(cases) >= 3
    for path in cases:
        verdict = expectation(path).sandbox
        assert verdict is not None
        issues = validate_file(path, root=VALID, graph_builder=sandbox)
        errors = [i for i in issues if not i.is_warning]
        assert (1 if errors else 0) == verdict[0], (path.name, issues)
        undecided = [i for i in issues if "cannot decide" in i.message]
        if path.name != "image_module.yaml":  # its image is not on this engine
            assert undecided == [], (path.name, undecided)


HOSTILE = {
    "loops": ("while True:\n    pass\n", "did not finish within 3 s, the sandbox's time limit"),
    "allocates": (
        "data = []\nwhile True:\n    data.append(bytearray(1 << 20))\n",
        "used more than 128 MiB, the sandbox's memory limit",
    ),
    "calls out": (
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=5)\n",
        "tried to use the network, and the sandbox has none",
    ),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_modules_are_stopped(
    docker_client: Any, instance_name: str, tmp_path: Path, kind: str
) -> None:
    source, words = HOSTILE[kind]
    marker = tmp_path / "ran-on-the-host"
    (tmp_path / "evil.py").write_text(  # first, try to leave a mark on the host
        f"import pathlib\ntry:\n    pathlib.Path({str(marker)!r}).write_text('x')\n"
        "except OSError:\n    pass\n" + source
    )
    builder = SandboxGraphBuilder(
        instance=instance_name,
        default_image=BASE_IMAGE,
        runtime_dir=runtime_with_describe(tmp_path),
        limits=SandboxLimits(wall_s=3, memory_bytes=128 << 20),
    )
    tree = build_tree(tmp_path, ["."])
    began = time.monotonic()
    with pytest.raises(CodeBuildError) as caught:
        builder.describe(code=tree, import_path="evil:app", args="{}", image=None)
    assert words in caught.value.message, caught.value.message
    assert time.monotonic() - began < 30
    assert not marker.exists(), "the module ran on the host"
    assert leftovers(docker_client, instance_name) == []
    if kind == "calls out":
        assert (caught.value.file, caught.value.line) == ("evil.py", 7)


def test_a_module_installed_in_the_image(
    docker_client: Any, sandbox: SandboxGraphBuilder, tmp_path: Path
) -> None:
    tag = f"serve-reconciler-test/image-module:{uuid.uuid4().hex[:8]}"
    module = textwrap.dedent("""
        from ray import serve

        @serve.deployment(num_replicas=2)
        class Shop:
            def __call__(self, request):
                return "shop"

        app = Shop.bind()
    """)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, text in {
            "Dockerfile": f"FROM {BASE_IMAGE}\nCOPY shop_in_image /usr/lib/python3/dist-packages/"
            f"shop_in_image\nLABEL {labels.TEST}=spec\n",
            "shop_in_image/__init__.py": "",
            "shop_in_image/graph.py": module,
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    docker_client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    try:
        root = tmp_path / "repo"
        root.mkdir()
        (root / "serve_config.yaml").write_text(
            f"import_path: shop_in_image.graph:app\nruntime_env:\n  image_uri: {tag}\n"
        )
        assert validate_file(root / "serve_config.yaml", root=root, graph_builder=sandbox) == []
        (shop,) = load_config(root, graph_builder=sandbox).deployments()
        assert (shop.name, shop.num_replicas, shop.image) == ("Shop", 2, tag)
    finally:
        docker_client.images.remove(tag, force=True)
