"""The runtime on an image with only python3 (the base image with every third-party Python
package removed): it starts and serves plain handlers with the stdlib fallback Request, and a
FastAPI module fails to start with an error naming the package it needs."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from runtime_support import BASE_IMAGE, call_json, http, make_spec, observe_until

from reconciler.model import CodeTree, ReplicaState
from reconciler.runtime import labels
from reconciler.runtime.docker_engine import DockerEngine

pytestmark = pytest.mark.docker

DOCKERFILE = f"""FROM {BASE_IMAGE}
RUN rm -rf /usr/lib/python3/dist-packages/* && python3 -c "import json, asyncio"
LABEL {labels.TEST}=true
"""

CODE = """
from ray import serve


@serve.deployment
class Plain:
    async def __call__(self, request):
        data = await request.json()
        return {"got": data, "path": request.url.path, "q": request.query_params.get("q")}


@serve.deployment
class Former:
    async def __call__(self, request):
        return dict(await request.form())


plain = Plain.bind()
former = Former.bind()
"""

FASTAPI_CODE = """
from fastapi import FastAPI
from ray import serve

api = FastAPI()


@serve.deployment
@serve.ingress(api)
class Api:
    pass


app = Api.bind()
"""


@pytest.fixture(scope="module")
def stdlib_image(docker_client: Any) -> Iterator[str]:
    tag = f"serve-reconciler-test/stdlib-only:{uuid.uuid4().hex[:8]}"
    docker_client.images.build(
        fileobj=io.BytesIO(DOCKERFILE.encode()), tag=tag, rm=True, forcerm=True
    )
    try:
        yield tag
    finally:
        docker_client.images.remove(tag, force=True)


@pytest.fixture
def stdlib_tree(tmp_path: Path) -> CodeTree:
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "plain.py").write_text(CODE)
    (root / "app" / "web.py").write_text(FASTAPI_CODE)
    return CodeTree(root=str(root), dirs=("app",), files=(("app/plain.py", "t"),))


@pytest.fixture
def engine(instance_name: str, docker_client: Any) -> Iterator[DockerEngine]:
    yield DockerEngine(
        instance=instance_name, default_image=BASE_IMAGE, docker_client=docker_client
    )


def test_plain_handlers_on_an_image_with_only_python3(
    engine: DockerEngine, stdlib_tree: CodeTree, stdlib_image: str, docker_client: Any
) -> None:
    image = stdlib_image
    engine.start_replica(make_spec(stdlib_tree, "Plain", import_path="plain:plain", image=image), 0)
    engine.start_replica(
        make_spec(stdlib_tree, "Former", import_path="plain:former", image=image), 0
    )
    engine.start_replica(make_spec(stdlib_tree, "Api", import_path="web:app", image=image), 0)

    def settled(rs: list[Any]) -> bool:
        states = {r.deployment: r.state for r in rs}
        return states == {
            "Plain": ReplicaState.RUNNING,
            "Former": ReplicaState.RUNNING,
            "Api": ReplicaState.FAILED,
        }

    replicas = {r.deployment: r for r in observe_until(engine, settled, 90)}
    plain = replicas["Plain"].control_url
    status, body = call_json(plain + "/x/y?q=1", {"a": [1]})
    assert status == 200 and body == {"got": {"a": [1]}, "path": "/x/y", "q": "1"}
    assert call_json(plain + "/-/state")[1]["starlette"] is False

    former = replicas["Former"].control_url
    ok = http(former, b"a=1&b=2", {"Content-Type": "application/x-www-form-urlencoded"})
    assert ok[0] == 200 and ok[1] == b'{"a":"1","b":"2"}'
    multipart = http(former, b"--x--\r\n", {"Content-Type": "multipart/form-data; boundary=x"})
    assert multipart[0] == 500 and b"python3-multipart" in multipart[1]

    error = replicas["Api"].error or ""
    assert error.startswith("ModuleNotFoundError: No module named 'fastapi'"), error
    assert "python3-fastapi" in error and "image_uri" in error
