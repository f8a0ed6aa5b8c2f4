"""Behavioural models of the pass driver's two seams, for Docker-free tests of whole pass
sequences: an engine that keeps containers in memory and moves them the way Docker and the
replicas do between passes, and a git branch of config trees on disk. The loader, the store
(sqlite), the planner, the retry policy and the status are the real ones. Nothing here asserts
calls: tests look at the end state (the snapshot, the containers) as the real suite does.

The engine: a started replica is STARTING until the next observation, then RUNNING; a drained
one is STOPPING (nothing left on it: the ingress no longer routes to it) until it is told to
stop, then gone at the next observation. The ingress counts reloads as HAProxy needs them: when
the rendered config changes beyond its servers (`IngressConfig.skeleton`). `down = True` makes
every call raise EngineUnavailable, as an engine that is not running does.
"""

from __future__ import annotations

import hashlib
import itertools
import textwrap
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler import admission, spec
from reconciler.errors import BranchMissing, EngineUnavailable, SourceError, SourceUnavailable
from reconciler.model import (
    Capacity,
    DeploymentSpec,
    HttpOptions,
    IngressConfig,
    ObservedReplica,
    ReplicaState,
    Snapshot,
)
from reconciler.reconcile import GitTarget, Reconciler
from reconciler.records import CommitInfo
from reconciler.state import StateStore

APP_CODE = textwrap.dedent(
    """\
    from ray import serve


    @serve.deployment
    class Hello:
        def reconfigure(self, config):
            self.greeting = config["greeting"]

        async def __call__(self, request):
            return self.greeting


    app = Hello.bind()
    """
)

CONFIG = textwrap.dedent(
    """\
    import_path: app:app
    deployments:
      - name: Hello
        num_replicas: {replicas}
        user_config:
          greeting: {greeting}
        ray_actor_options:
          num_cpus: {cpus}
    """
)


def config_text(replicas: int = 2, greeting: str = "hello", cpus: float = 0.1) -> str:
    return CONFIG.format(replicas=replicas, greeting=greeting, cpus=cpus)


_ids = itertools.count(1)


@dataclass
class ModelEngine:
    """The engine seam, in memory. `capacity_now` is what `docker info` would allow."""

    capacity_now: Capacity = field(
        default_factory=lambda: Capacity(cores=2, cpus=8, memory=8 << 30, max_replicas=200)
    )
    down: bool = False
    containers: dict[str, ObservedReplica] = field(default_factory=dict)
    starts: int = 0
    ingress: tuple[HttpOptions, IngressConfig] | None = None
    reloads: int = 0  # reloads of a running ingress (a change beyond its servers)

    def _up(self) -> None:
        if self.down:
            raise EngineUnavailable("the Docker engine is not reachable (model: down)")

    def observe(self) -> list[ObservedReplica]:
        self._up()
        seen = list(self.containers.values())
        for cid, r in list(self.containers.items()):  # the world moves on between passes
            if r.state is ReplicaState.STARTING:
                self.containers[cid] = replace(r, state=ReplicaState.RUNNING)
            elif r.state is ReplicaState.STOPPING and r.stop_sent:
                del self.containers[cid]  # it finished and exited
        return seen

    def capacity(self) -> Capacity:
        self._up()
        return self.capacity_now

    def start_replica(self, s: DeploymentSpec, index: int) -> None:
        self._up()
        self.starts += 1
        cid = f"c{next(_ids)}"
        self.containers[cid] = ObservedReplica(
            container_id=cid,
            name=f"{s.app}-{s.name}-{index}",
            app=s.app,
            deployment=s.name,
            index=index,
            version=s.version,
            state=ReplicaState.STARTING,
            user_config_hash=s.user_config_hash,
            network_ip=f"10.0.0.{len(self.containers) % 250 + 2}",
            demand=admission.demand(s),
        )

    def reconfigure(self, replica: ObservedReplica, s: DeploymentSpec) -> None:
        self._up()
        current = self.containers[replica.container_id]
        self.containers[replica.container_id] = replace(
            current, user_config_hash=s.user_config_hash
        )

    def drain(self, replica: ObservedReplica, timeout_s: float) -> None:
        self._up()
        if replica.container_id in self.containers:
            current = self.containers[replica.container_id]
            self.containers[replica.container_id] = replace(
                current, state=ReplicaState.STOPPING, drain_deadline=1e12, in_flight=0
            )

    def stop(self, replica: ObservedReplica) -> None:
        self._up()
        current = self.containers.get(replica.container_id)
        if current is not None:
            self.containers[replica.container_id] = replace(current, stop_sent=True)

    def remove(self, replica: ObservedReplica) -> None:
        self._up()
        self.containers.pop(replica.container_id, None)

    def apply_ingress(self, http: HttpOptions | None, ingress: IngressConfig | None) -> None:
        self._up()
        before = self.ingress
        self.ingress = None if http is None or ingress is None else (http, ingress)
        if before is not None and self.ingress is not None:
            self.reloads += before[1].skeleton != self.ingress[1].skeleton

    def remove_all(self) -> None:
        self._up()
        self.containers.clear()

    def live(self) -> list[ObservedReplica]:
        live = (ReplicaState.STARTING, ReplicaState.RUNNING)
        return [r for r in self.containers.values() if r.state in live]


class ModelBranch:
    """A branch of commits, each a directory holding app.py and serve_config.yaml."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tip: str | None = None  # the commit the branch points at
        self.unreachable = False
        self.deleted = False
        self.heads_asked = 0
        self.subjects: dict[str, str] = {}
        self.checkouts: dict[str, int] = {}  # commit -> times read (prepared)
        self._n = 0

    def push(self, config: str, code: str = APP_CODE, subject: str = "") -> str:
        self._n += 1
        commit = hashlib.sha1(f"{self.root}:{self._n}".encode()).hexdigest()
        tree = self.root / commit
        tree.mkdir(parents=True)
        (tree / "app.py").write_text(code)
        (tree / "serve_config.yaml").write_text(config)
        self.subjects[commit] = subject or f"commit number {self._n}"
        self.tip = commit
        return commit

    # the Source protocol
    def head(self) -> str:
        self.heads_asked += 1
        if self.unreachable:
            raise SourceUnavailable("cannot reach the remote (model: unreachable)")
        if self.deleted or self.tip is None:
            raise BranchMissing("branch 'main' not found on the remote (model)")
        return self.tip

    def checkout(self, commit: str) -> Path:
        self.checkouts[commit] = self.checkouts.get(commit, 0) + 1
        return self.root / commit

    def commit_info(self, commit: str) -> CommitInfo:
        return CommitInfo("model author", 1_000.0, self.subjects[commit])

    def resolve(self, rev: str) -> str:
        found = [c for c in self.subjects if c.startswith(rev.lower())]
        if len(found) != 1:
            raise SourceError(f"no commit {rev} on branch 'main' (model)")
        return found[0]


@dataclass
class Daemon:
    """A reconciler over the two models and a real state store: what `reconciler run` builds."""

    branch: ModelBranch
    engine: ModelEngine
    state_dir: Path
    clock: list[float] = field(default_factory=lambda: [1_000_000.0])
    interval_s: float = 15.0

    def __post_init__(self) -> None:
        self.store = StateStore(self.state_dir)
        self.reconciler = self._build()

    def _build(self) -> Reconciler:
        self.target = target = GitTarget(
            source=self.branch,
            store=self.store,
            config_path="serve_config.yaml",
            load=spec.load_config,
            clock=self.now,
        )
        return Reconciler(
            target=target,
            engine=self.engine,
            redact=spec.redacted_document,
            interval_s=self.interval_s,
            clock=self.now,
        )

    def now(self) -> float:
        return self.clock[0]

    def restart(self) -> None:
        """A new process: a new store handle and reconciler, the same engine and state dir."""
        self.store.close()
        self.store = StateStore(self.state_dir)
        self.reconciler = self._build()

    def run(self, passes: int = 1) -> float | None:
        """Run passes, the clock moving by each pass's requested delay (one interval if None)."""
        delay: float | None = None
        for _ in range(passes):
            delay = self.reconciler.run_pass()
            self.clock[0] += delay if delay is not None else self.interval_s
        return delay

    def settle(self, limit: int = 30) -> Snapshot:
        for _ in range(limit):
            delay = self.run()
            if self.reconciler.last_settled and delay is None:
                return self.snapshot
        return self.snapshot

    @property
    def snapshot(self) -> Snapshot:
        return self.reconciler.snapshot

    def close(self) -> None:
        self.store.close()
