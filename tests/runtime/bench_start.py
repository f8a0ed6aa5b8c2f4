"""Time start_replica (one, and N in parallel) against `docker run -d` of the same image.

Usage: .venv/bin/python tests/runtime/bench_start.py [N]   (not collected by pytest)
Prints seconds until the calls return (container started) and until every replica is RUNNING.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from runtime_appcode import APP_SOURCE
from runtime_support import BASE_IMAGE, make_spec

from reconciler.model import CodeTree, ReplicaState
from reconciler.runtime import labels
from reconciler.runtime.docker_engine import DockerEngine


def _until_running(engine: DockerEngine, count: int) -> None:
    while True:
        replicas = engine.observe()
        if len(replicas) == count and all(r.state is ReplicaState.RUNNING for r in replicas):
            return
        time.sleep(0.05)


def _docker_run(owner: str, i: int) -> None:
    subprocess.run(
        ["docker", "run", "-d", "--label", f"{labels.OWNER}={owner}", "--label",
         f"{labels.TEST}=true", "-p", "127.0.0.1::8000", "--name", f"bench-{owner}-{i}",
         BASE_IMAGE, "python3", "-m", "http.server", "8000"],
        check=True, capture_output=True,
    )  # fmt: skip


def _cleanup(owner: str) -> None:
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={labels.OWNER}={owner}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
    subprocess.run(["docker", "network", "rm", f"serve-{owner}"], capture_output=True, check=False)


def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "app").mkdir()
        (Path(tmp) / "app" / "shop.py").write_text(APP_SOURCE)
        spec = make_spec(CodeTree(root=tmp, dirs=("app",), files=()), user_config={"price": 3})
        owner = f"bench{uuid.uuid4().hex[:6]}"
        engine = DockerEngine(instance=owner, default_image=BASE_IMAGE)
        try:
            engine.start_replica(spec, 99)  # warm: network, bundle cache
            _until_running(engine, 1)
            t0 = time.monotonic()
            engine.start_replica(spec, 0)
            one = time.monotonic() - t0
            _until_running(engine, 2)
            one_ready = time.monotonic() - t0
            t0 = time.monotonic()
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(lambda i: engine.start_replica(spec, i), range(1, n + 1)))
            par = time.monotonic() - t0
            _until_running(engine, n + 2)
            par_ready = time.monotonic() - t0
            t0 = time.monotonic()
            with ThreadPoolExecutor(n) as pool:
                list(pool.map(lambda i: _docker_run(owner, i), range(n)))
            plain = time.monotonic() - t0
        finally:
            _cleanup(owner)
    print(f"one start_replica: {one:.2f}s returned, {one_ready:.2f}s RUNNING")
    print(f"{n} in parallel:   {par:.2f}s returned, {par_ready:.2f}s RUNNING")
    print(f"{n} x docker run -d in parallel: {plain:.2f}s  (ratio {par / plain:.2f})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
