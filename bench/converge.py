"""Section `converge`: N replicas from nothing to ready, three ways, interleaved in one run.

(a) the reconciler: `reconciler up -d` as a subprocess (the user's path: CLI start, config load,
    network, the deployment's image, the ingress); (b) `docker-compose up -d --scale`; (c) N
    `docker run -d` in parallel. Done = every container answers GET /-/ready on its published
    port, seen by one `ReadyWatch` poller for all three. All three start the image the reconciler
    built for the deployment (code and runtime inside, nothing copied in or mounted). The first
    run of (a) builds that image and is reported apart (`reconciler_first_s`, `image_build_s`);
    the timed runs find it built, as every deploy after the first of a code version does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.core import (
    BENCH_LABEL,
    Cleanup,
    ReadyWatch,
    Stopwatch,
    median,
    parallel,
    replica_filters,
)
from bench.workload import IMAGE, ContainerRecipe, Workload, recipe
from reconciler import spec
from reconciler.runtime import labels
from reconciler.runtime.docker_engine import DockerEngine
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300.0
_HARDENING = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--pids-limit", "256"]


def reconciler_up(cleanup: Cleanup, tree: Path, n: int, owner: str) -> dict[str, float]:
    watch = ReadyWatch(cleanup.client, replica_filters(owner))
    clock = Stopwatch()
    proc = cleanup.process(
        subprocess.Popen(
            [sys.executable, "-m", "reconciler", "up", "-d", "serve_config.yaml", "--instance",
             owner, "--log-level", "WARNING", "--timeout", str(TIMEOUT_S)],
            cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
    )  # fmt: skip
    watch.wait(n, TIMEOUT_S)
    ready = clock.elapsed()
    _, err = proc.communicate(timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"reconciler up -d exited {proc.returncode}: {err.decode()[-2000:]}")
    returned = clock.elapsed()
    cleanup.remove_owner(owner)  # its containers and network; the image stays, as in use
    return {"ready_s": ready, "returned_s": returned}


def image_build(cleanup: Cleanup, tree: Path) -> float:
    """Seconds to build the deployment's image from nothing, in-process, for a throwaway owner."""
    owner = cleanup.owner("build")
    engine = DockerEngine(instance=owner, default_image=IMAGE, docker_client=cleanup.client)
    try:
        config = spec.load_config(tree, "serve_config.yaml")
        clock = Stopwatch()
        engine.prepare(config, lambda _: None)
        return clock.elapsed()
    finally:
        engine.remove_images()
        engine.close()


def built_image(client: Any, owner: str) -> str:
    found = client.api.images(
        filters={"label": [f"{labels.OWNER}={owner}", f"{labels.ROLE}=app-image"]}
    )
    tags = [t for image in found for t in image.get("RepoTags") or ()]
    if len(tags) != 1:
        raise RuntimeError(f"expected one image built for {owner}, found {tags}")
    return str(tags[0])


def _compose_file(r: ContainerRecipe, owner: str) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": r.image,
        "command": r.command,
        "user": r.user,
        "working_dir": "/app/work",
        "environment": dict(r.env),
        "labels": {labels.OWNER: owner, BENCH_LABEL: "compose", labels.ROLE: "replica"},
        "ports": ["127.0.0.1::8000"],
        "volumes": [f"{src}:{dst}:ro" for src, dst in r.binds.items()],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": 256,
    }
    if r.nano_cpus:
        service["cpus"] = r.nano_cpus / 1e9
    return {
        "version": "2.4",
        "services": {"bench": service},
        "networks": {"default": {"labels": {labels.OWNER: owner, BENCH_LABEL: "compose"}}},
    }


def compose_up(cleanup: Cleanup, r: ContainerRecipe, n: int, workdir: Path) -> dict[str, float]:
    owner = cleanup.owner("comp")
    path = workdir / f"{owner}.yml"
    path.write_text(json.dumps(_compose_file(r, owner)))  # JSON is YAML
    watch = ReadyWatch(cleanup.client, replica_filters(owner))
    clock = Stopwatch()
    done = subprocess.run(
        ["docker-compose", "-p", owner, "-f", str(path), "up", "-d", "--scale", f"bench={n}"],
        capture_output=True, timeout=TIMEOUT_S, check=False,
        env={**os.environ, "COMPOSE_INTERACTIVE_NO_CLI": "1"},
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"docker-compose up failed: {done.stderr.decode()[-2000:]}")
    returned = clock.elapsed()
    watch.wait(n, TIMEOUT_S)
    ready = clock.elapsed()
    cleanup.remove_owner(owner)
    return {"ready_s": ready, "returned_s": returned}


def _docker_run_args(r: ContainerRecipe, owner: str, network: str, i: int) -> list[str]:
    args = ["docker", "run", "-d", "--label", f"{labels.OWNER}={owner}", "--label",
            f"{labels.ROLE}=replica", "--label", f"{BENCH_LABEL}=docker-run", "--network",
            network, "-p", "127.0.0.1::8000", "--user", r.user, "-w", "/app/work",
            *_HARDENING]  # fmt: skip
    for key, value in {**r.env, "SERVE_REPLICA": str(i)}.items():
        args += ["-e", f"{key}={value}"]
    for src, dst in r.binds.items():
        args += ["-v", f"{src}:{dst}:ro"]
    if r.nano_cpus:
        args += ["--cpus", str(r.nano_cpus / 1e9)]
    return [*args, r.image, *r.command]


def docker_run(cleanup: Cleanup, r: ContainerRecipe, n: int) -> dict[str, float]:
    owner = cleanup.owner("run")
    network = f"{owner}-net"
    cleanup.client.api.create_network(network, labels={labels.OWNER: owner, BENCH_LABEL: "run"})
    watch = ReadyWatch(cleanup.client, replica_filters(owner))
    clock = Stopwatch()
    parallel(
        lambda i: subprocess.run(
            _docker_run_args(r, owner, network, i), capture_output=True, check=True
        ),
        list(range(n)),
        workers=n,
    )
    returned = clock.elapsed()
    watch.wait(n, TIMEOUT_S)
    ready = clock.elapsed()
    cleanup.remove_owner(owner)
    return {"ready_s": ready, "returned_s": returned}


def run(cleanup: Cleanup, sizes: list[int], repeats: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-converge-") as tmp:
        work = Path(tmp)
        for n in sizes:
            tree = Workload(replicas=n, port=free_port()).write(work / f"tree{n}")
            build_s = image_build(cleanup, tree)
            owner = cleanup.owner("conv")  # one instance: its image is built once, then found
            first = reconciler_up(cleanup, tree, n, owner)
            r = recipe(tree, None, image=built_image(cleanup.client, owner))
            runs: dict[str, list[dict[str, float]]] = {"reconciler": [], "compose": [], "run": []}
            for _ in range(repeats):  # interleaved, so drift in the machine hits all three
                runs["reconciler"].append(reconciler_up(cleanup, tree, n, owner))
                runs["compose"].append(compose_up(cleanup, r, n, work))
                runs["run"].append(docker_run(cleanup, r, n))
            result[str(n)] = {
                **_summary(runs),
                "reconciler_first_s": first["ready_s"],
                "image_build_s": build_s,
            }
    return result


def _summary(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in runs.items():
        out[f"{name}_s"] = median([v["ready_s"] for v in values])
        out[f"{name}_returned_s"] = median([v["returned_s"] for v in values])
        out[f"{name}_runs_s"] = [round(v["ready_s"], 3) for v in values]
    out["ratio_reconciler_vs_run"] = out["reconciler_s"] / out["run_s"]
    out["ratio_reconciler_vs_compose"] = out["reconciler_s"] / out["compose_s"]
    return out
