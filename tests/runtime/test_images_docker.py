"""Dependencies the Serve way, against the real engine: runtime_env.pip resolved on the host from
a package index the test serves, an image built per version (offline), replicas started from it;
a remote https:// working_dir; and the image GC. Wired as `reconciler up` wires it
(`app.engine.make_loader`, `app.engine.ImageKeeper`)."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler import spec
from reconciler.app import engine as app
from reconciler.errors import ConfigError
from reconciler.model import ApplicationStatus, ObservedReplica, ReplicaState, ServeConfig
from reconciler.plan import diff_configs
from reconciler.reconcile import Reconciler, WorkTreeTarget
from reconciler.reconcile.jobs import Progress
from reconciler.runtime import labels
from reconciler.runtime.docker_engine import DockerEngine
from reconciler.runtime.remote_code import CodeFetcher
from reconciler.runtime.wheels import PipSettings
from reconciler.settings import EngineSettings
from tests.conftest import BASE_IMAGE, new_instance_name, remove_owned
from tests.packaging_support import archive_server, self_signed_cert, simple_index, zip_bytes
from tests.support import free_port, wait_for

pytestmark = pytest.mark.docker

APP = """\
import tinypkg
from ray import serve


@serve.deployment(num_replicas=1)
class Pkg:
    def value(self):
        return tinypkg.VALUE


app = Pkg.bind()
"""
CONFIG = """\
import_path: pkgapp:app
host: 127.0.0.1
port: {port}
runtime_env:
  pip:
    - tinypkg=={version}
deployments:
  - name: Pkg
    health_check_period_s: 1
    graceful_shutdown_wait_loop_s: 0.1
    graceful_shutdown_timeout_s: 2
    ray_actor_options:
      num_cpus: 0.2
"""


@dataclass
class Up:
    """`reconciler up` over a work tree, pass by pass, with the loader that builds images."""

    root: Path
    engine: DockerEngine
    fetch: CodeFetcher
    reconciler: Reconciler | None = None
    loaded: ServeConfig | None = None

    def __post_init__(self) -> None:
        keeper = app.ImageKeeper(self.engine, keep=3, background=False)
        build = keeper.preparer()

        def prepare(config: ServeConfig, progress: Progress) -> ServeConfig:
            self.loaded = build(config, progress)
            keeper.applied("worktree")
            return self.loaded

        settings = EngineSettings(instance=self.engine._instance, default_image=BASE_IMAGE)
        load = app.make_loader(settings, self.fetch, self.engine)
        target = WorkTreeTarget(
            root=self.root, config_path="serve_config.yaml", load=load, prepare=prepare
        )
        self.reconciler = Reconciler(
            target=target, engine=self.engine, redact=spec.redacted_document, interval_s=1.0
        )

    def converge(self, timeout: float = 120.0) -> None:
        assert self.reconciler is not None
        r = self.reconciler

        def settled() -> bool:
            r.run_pass()
            apps = r.snapshot.applications
            running = all(a.status == ApplicationStatus.RUNNING for a in apps)
            return r.last_settled and bool(apps) and running

        wait_for(settled, timeout=timeout, interval=0.3, what="convergence")

    def running(self) -> list[ObservedReplica]:
        return [r for r in self.engine.observe() if r.state == ReplicaState.RUNNING]

    def call(self, replica: ObservedReplica, method: str) -> Any:
        url = f"{replica.control_url}/-/call/{replica.app}/{replica.deployment}/{method}"
        response = requests.post(url, json={"args": [], "kwargs": {}}, timeout=10)
        response.raise_for_status()
        return response.json()["result"]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[str]:
    versions = [(v, f"VALUE = {v!r}\n") for v in ("1.0", "2.0")]
    with simple_index(tmp_path / "index", {"tinypkg": versions}) as url:
        yield url


def _engine(instance: str, tmp_path: Path, docker_client: Any, index: str = "") -> DockerEngine:
    # A find-links directory the host's pip config may name (PIP_FIND_LINKS) stays in play:
    # only the index is replaced, as a user's --pip-index-url would.
    return DockerEngine(
        instance=instance,
        default_image=BASE_IMAGE,
        docker_client=docker_client,
        cache_dir=tmp_path / "cache",
        pip=PipSettings(index_url=index or None),
    )


def test_pip_packages_deploy_roll_and_an_unresolvable_one_is_refused(
    tmp_path: Path, instance_name: str, docker_client: Any, index: str
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pkgapp.py").write_text(APP)
    port = free_port()
    (root / "serve_config.yaml").write_text(CONFIG.format(port=port, version="1.0"))
    up = Up(root, _engine(instance_name, tmp_path, docker_client, index), CodeFetcher(tmp_path))
    up.converge()
    (first,) = up.running()
    assert up.call(first, "value") == "1.0"  # imported from the wheel the index served
    builds, resolutions = up.engine.images.builds, up.engine.images.resolutions
    assert (builds, resolutions) == (2, 1)  # the packages image, then the code on top
    image = docker_client.api.inspect_container(first.container_id)["Config"]["Image"]
    assert image == next(up.loaded.deployments()).built_image  # type: ignore[union-attr]

    # An unchanged tree builds and resolves nothing, however many passes run.
    for _ in range(3):
        up.reconciler.run_pass()  # type: ignore[union-attr]
    assert (up.engine.images.builds, up.engine.images.resolutions) == (builds, resolutions)

    # Another package version: a new image, and the deployment rolls onto it.
    before = up.loaded
    (root / "serve_config.yaml").write_text(CONFIG.format(port=port, version="2.0"))
    up.converge()
    (second,) = up.running()
    assert second.container_id != first.container_id
    assert up.call(second, "value") == "2.0"
    (change,) = diff_configs(before, up.loaded)  # type: ignore[arg-type]
    assert change.kind == "restart"
    assert change.reasons == ("image rebuild (pip: tinypkg==1.0 -> tinypkg==2.0)",)

    # A requirement the index cannot satisfy: refused at its line, the running version stays.
    (root / "serve_config.yaml").write_text(CONFIG.format(port=port, version="9.9"))
    up.reconciler.run_pass()  # type: ignore[union-attr]
    commits = up.reconciler.snapshot.commits  # type: ignore[union-attr]
    assert commits.outcome == "invalid"
    (error,) = commits.errors
    assert error.startswith("serve_config.yaml:6:7: cannot install 'tinypkg==9.9'")
    assert "No matching distribution found for tinypkg==9.9" in error  # pip's own words
    assert [r.container_id for r in up.running()] == [second.container_id]
    assert up.call(second, "value") == "2.0"


BUILDER_APP = """\
import tinypkg
from ray import serve


@serve.deployment
class Pkg:
    def value(self):
        return tinypkg.VALUE


def build(args):
    # options the code computes from a package only its runtime_env has: read in the sandbox
    replicas = 1 if tinypkg.VALUE == "1.0" else 2
    return Pkg.options(num_replicas=replicas, max_ongoing_requests=args["x"]).bind()
"""


def test_a_builder_importing_a_pip_package_is_built_in_the_packages_image(
    tmp_path: Path, instance_name: str, docker_client: Any, index: str
) -> None:
    """Serve builds the application in its runtime_env: the sandbox imports the builder's
    module in the image that has the app's pip packages, so its options can be read."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "pkgapp.py").write_text(BUILDER_APP)
    config = CONFIG.format(port=free_port(), version="2.0")
    config = config.replace("import_path: pkgapp:app", "import_path: pkgapp:build\nargs: {x: 7}")
    (root / "serve_config.yaml").write_text(config)
    up = Up(root, _engine(instance_name, tmp_path, docker_client, index), CodeFetcher(tmp_path))
    try:
        up.converge()
        replicas = up.running()
        assert len(replicas) == 2  # num_replicas=2: the builder saw tinypkg 2.0
        assert {up.call(r, "value") for r in replicas} == {"2.0"}
        (pkg,) = up.loaded.deployments()  # type: ignore[union-attr]
        assert pkg.max_ongoing_requests == 7
    finally:
        up.engine.remove_all()
        remove_owned(docker_client, instance_name)


def test_an_https_zip_working_dir_deploys(
    tmp_path: Path, instance_name: str, docker_client: Any
) -> None:
    code = APP.replace("import tinypkg\n", "").replace("tinypkg.VALUE", '"from the zip"')
    archive = zip_bytes({"proj-main/": "", "proj-main/pkgapp.py": code})
    root = tmp_path / "repo"
    root.mkdir()
    certs = self_signed_cert(tmp_path)
    with archive_server(certs) as server:
        url = server.zip("/proj/archive/main.zip", archive)
        config = CONFIG.format(port=free_port(), version="1.0")
        pinned = f"  working_dir: {url}\n  x-sha256: {hashlib.sha256(archive).hexdigest()}\n"
        config = config.replace("  pip:\n    - tinypkg==1.0\n", pinned)
        (root / "serve_config.yaml").write_text(config)
        fetch = CodeFetcher(tmp_path / "cache", cafile=str(certs[0]))
        up = Up(root, _engine(instance_name, tmp_path, docker_client), fetch)
        up.converge()
        up.reconciler.run_pass()  # type: ignore[union-attr]
        assert server.hits["/proj/archive/main.zip"] == 1
    (replica,) = up.running()
    assert up.call(replica, "value") == "from the zip"
    spec_code = next(up.loaded.deployments()).code  # type: ignore[union-attr]
    assert spec_code is not None and spec_code.dirs == (url,)


def test_gc_removes_unused_images_it_owns_and_nothing_else(
    tmp_path: Path, instance_name: str, docker_client: Any
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "serve_config.yaml").write_text("import_path: gcapp:app\n")
    engine = _engine(instance_name, tmp_path, docker_client)

    def build(version: str, on: DockerEngine = engine) -> Any:
        (root / "gcapp.py").write_text(APP.replace("import tinypkg\n", "").replace(
            "tinypkg.VALUE", repr(version)))  # fmt: skip
        prepared = on.prepare(spec.load_config(root, "serve_config.yaml"), lambda _: None)
        return next(prepared.deployments())

    v1, v2, v3 = build("1"), build("2"), build("3")
    tags = [s.built_image for s in (v1, v2, v3)]
    assert len(set(tags)) == 3 and engine.images.builds == 3
    other = new_instance_name()
    foreign = build("3", _engine(other, tmp_path, docker_client))
    try:
        engine.start_replica(v1, 0)  # v1 is in use by a container
        shared = {*_intermediates(docker_client, v1.built_image)}
        shared |= {*_intermediates(docker_client, v3.built_image)}
        left = [i for i in _intermediates(docker_client, v2.built_image) if i not in shared]
        assert left  # its own build steps (COPY opt is shared: the builder's cache)
        assert set(engine.collect_images(keep={v3.built_image})) == {v2.built_image}
        assert _present(docker_client, v1.built_image, v3.built_image, foreign.built_image)
        assert not any(_present(docker_client, i) for i in [v2.built_image, *left])
        engine.remove_all()
        assert set(engine.collect_images(keep={v3.built_image})) == {v1.built_image}
        assert _present(docker_client, v3.built_image, foreign.built_image)
        # A tag removed behind the engine's back is built again when a replica needs it.
        docker_client.images.remove(v3.built_image)
        engine.start_replica(v3, 0)
        assert _present(docker_client, v3.built_image) and engine.images.builds == 4
    finally:
        remove_owned(docker_client, other)
    assert _present(docker_client, BASE_IMAGE)


def _present(client: Any, *refs: str | None) -> bool:
    for ref in refs:
        try:
            client.api.inspect_image(ref)
        except Exception:
            return False
    return True


def _intermediates(client: Any, ref: str | None) -> list[str]:
    """The untagged images between a built image and the image it was built FROM."""
    info = client.api.inspect_image(ref)
    base = info["Config"]["Labels"][labels.BASE_IMAGE]
    chain, parent = [], info.get("Parent")
    while parent and parent != base:
        chain.append(parent)
        parent = client.api.inspect_image(parent).get("Parent")
    return chain


def test_a_package_that_cannot_install_in_the_image_is_refused_and_leaves_nothing(
    tmp_path: Path, instance_name: str, docker_client: Any
) -> None:
    # The host's pip resolves this wheel; installing it (in the image) refuses a member that
    # would land outside the target directory.
    with simple_index(tmp_path / "index", {"escaping": [("1.0", "E = 1\n")]}) as url:
        wheel = tmp_path / "index" / "simple" / "escaping" / "escaping-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "a") as zf:
            zf.writestr("../outside.py", "X = 1\n")
        root = tmp_path / "repo"
        root.mkdir()
        (root / "pkgapp.py").write_text(APP)
        config = CONFIG.format(port=free_port(), version="1.0").replace("tinypkg", "escaping")
        (root / "serve_config.yaml").write_text(config)
        engine = _engine(instance_name, tmp_path, docker_client, url)
        before = {i["Id"] for i in docker_client.api.images(all=True)}
        with pytest.raises(ConfigError) as caught:
            engine.prepare(spec.load_config(root, "serve_config.yaml"), lambda _: None)
    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.column) == ("serve_config.yaml", 6, 5)  # the pip list
    assert "cannot be installed in the image" in issue.message
    assert "outside the target directory" in issue.message  # pip's own words
    new = {i["Id"] for i in docker_client.api.images(all=True)} - before
    ours = [i for i in new if _history_mentions(docker_client, i, "/tmp/serve-wheels")]
    assert ours == []  # the failed build's steps were removed


def _history_mentions(client: Any, image: str, text: str) -> bool:
    try:
        return any(text in str(h.get("CreatedBy", "")) for h in client.api.history(image))
    except Exception:  # removed meanwhile (another test's cleanup)
        return False
