"""The planner: from the desired state (a ServeConfig) and the observed replicas, the actions of one
pass. Pure: no I/O, standard library only. `diff`, dry runs and the reconcile pass all use it.

The rules are Serve's (ray-serve.md section 3), with start-before-stop in rolling updates, like
Compose's and Swarm's start-first: a new replica is up and RUNNING before an old one is drained.
Replica indexes start at 0.

Call `next_failures` first and hand its result to `plan`, so that a replica that failed on this
pass already counts towards the backoff (each FAILED replica is counted once: `plan` removes it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reconciler import admission
from reconciler.backoff import MAX_BACKOFF_S, backoff_s
from reconciler.model import (
    Action,
    Capacity,
    DeploymentSpec,
    DrainReplica,
    FailureRecord,
    ObservedReplica,
    PackageSet,
    Pending,
    Plan,
    ReconfigureReplica,
    RemoveReplica,
    ReplicaState,
    ServeConfig,
    StartReplica,
    StopReplica,
)
from reconciler.view import DeploymentView, group, orphans, views

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT_S",
    "MAX_BACKOFF_S",
    "STABLE_S",
    "DeploymentChange",
    "classify",
    "diff_configs",
    "next_failures",
    "plan",
    "rollout_batch",
]

Key = tuple[str, str]

STABLE_S = 10.0  # how long a replica must have run before its deployment's failure count resets
# A deployment gone from the config has no graceful_shutdown_timeout_s any more: Serve's default.
DEFAULT_DRAIN_TIMEOUT_S = 20.0
DEFAULT_WAIT_LOOP_S = 2.0
GENERIC_FAILURE = "the replica container exited without reporting an error"

_ACTION_ORDER = {
    RemoveReplica: 0,
    DrainReplica: 1,
    StopReplica: 2,
    ReconfigureReplica: 3,
    StartReplica: 4,
}
# A drained replica still busy is told to stop this long (plus its drain loop period) before its
# deadline, so it can finish and exit before the deadline's forced removal.
STOP_MARGIN_S = 1.0


def rollout_batch(target: int) -> int:
    """How many new-version replicas may be starting at once in a rolling update (Serve: 20%)."""
    return max(1, int(0.2 * target))


def _in_backoff(view: DeploymentView, now: float) -> bool:
    return view.failure is not None and now < view.failure.retry_at


@dataclass
class _Pass:
    """The working state of planning: what is drained, removed and started, what waits for room
    on the host, and that room (None: admission is off, as for `diff`)."""

    actions: list[Action]
    gone: set[str]  # container ids drained or removed on this pass
    budget: admission.Budget | None
    pending: dict[Key, Pending]

    def remove(self, replica: ObservedReplica, reason: str) -> None:
        self.actions.append(RemoveReplica(replica=replica, reason=reason))
        self.gone.add(replica.container_id)

    def drain(self, replica: ObservedReplica, timeout_s: float, reason: str) -> None:
        # A replica that never served traffic has nothing to drain (Serve kills it at once).
        timeout = 0.0 if replica.state is ReplicaState.STARTING else timeout_s
        self.actions.append(DrainReplica(replica=replica, timeout_s=timeout, reason=reason))
        self.gone.add(replica.container_id)

    def admit(self, spec: DeploymentSpec, wanted: int) -> int:
        """How many of `wanted` new replicas of `spec` may start now; the rest is pending."""
        if self.budget is None or wanted <= 0:
            return max(0, wanted)
        need = admission.demand(spec)
        free = self.budget.free()
        room = self.budget.replicas
        admitted = self.budget.take(need, wanted)
        if admitted < wanted:
            self.pending[spec.key] = Pending(
                count=wanted - admitted,
                demand=need,
                free=free,
                capacity=self.budget.capacity,
                replicas_free=max(0, room),
            )
        return admitted

    def may_stop_first(self, view: DeploymentView) -> bool:
        """Nothing new is starting or old draining (that will make room by itself), and
        draining one batch of old replicas would make room for a new one."""
        if self.budget is None or len(view.running) < len(view.current):
            return False
        if view.count(ReplicaState.STOPPING):
            return False
        batch = sorted(view.old, key=_drain_order(view.spec))[: rollout_batch(view.target)]
        demands = {view.spec.key: admission.demand(view.spec)}
        released = [admission.held_by(r, demands) for r in batch]
        return self.budget.fits_after_release(admission.demand(view.spec), released)


def _clean_up(
    replicas: Sequence[ObservedReplica], drain_s: float, wait_loop_s: float, now: float, p: _Pass
) -> None:
    """Failed, never-started, overdue and unhealthy replicas, whatever the desired state; and
    drained replicas that may now be told to stop."""
    for r in replicas:
        if r.state is ReplicaState.FAILED:
            p.remove(r, f"failed: {r.error}" if r.error else "failed")
        elif r.state is ReplicaState.STALE:
            p.remove(r, "created but never started")
        elif r.state is ReplicaState.STOPPING:
            if r.drain_deadline is not None and r.drain_deadline <= now:
                p.remove(r, "drain timed out")
            elif not r.stop_sent:
                _stop_when_idle(r, wait_loop_s, now, p)
        elif r.state is ReplicaState.UNHEALTHY:
            p.drain(r, drain_s, "health check failed")


def _stop_when_idle(r: ObservedReplica, wait_loop_s: float, now: float, p: _Pass) -> None:
    """Removal in order: out of rotation first (the drain), then, once the ingress has nothing
    running or queued on it, told to stop. Unknown (no ingress to ask) stops it at once: it
    finishes its own requests before it exits. A replica still busy near its deadline is told
    anyway, so it can finish before it is killed."""
    if r.in_flight is None or r.in_flight == 0:
        why = "no request left on it" if r.in_flight == 0 else "out of rotation"
        p.actions.append(StopReplica(replica=r, reason=why))
    elif r.drain_deadline is not None and now >= r.drain_deadline - wait_loop_s - STOP_MARGIN_S:
        p.actions.append(StopReplica(replica=r, reason=f"drain deadline near, {r.in_flight} left"))


def _drain_order(spec: DeploymentSpec) -> Callable[[ObservedReplica], tuple[bool, bool, int]]:
    """Sort key: the replicas to give up first come first: not yet serving, then those that would
    need a reconfigure, then the highest index."""

    def key(replica: ObservedReplica) -> tuple[bool, bool, int]:
        in_sync = replica.user_config_hash == spec.user_config_hash
        return (replica.state is not ReplicaState.STARTING, in_sync, -replica.index)

    return key


def _scale_down(view: DeploymentView, p: _Pass) -> None:
    excess = len(view.current) - view.target
    spec = view.spec
    for r in sorted(view.current, key=_drain_order(spec))[: max(0, excess)]:
        p.drain(r, spec.graceful_shutdown_timeout_s, "scale down")


def _retire_old(view: DeploymentView, p: _Pass) -> None:
    """Drain old-version replicas beyond what the RUNNING new-version ones do not yet replace."""
    keep = max(0, view.target - len(view.running))
    spec = view.spec
    for r in sorted(view.old, key=_drain_order(spec))[: max(0, len(view.old) - keep)]:
        p.drain(r, spec.graceful_shutdown_timeout_s, "replaced by the new version")


def _wanted_starts(view: DeploymentView) -> int:
    missing = view.target - len(view.current)
    if not view.old:
        return max(0, missing)
    starting = sum(1 for r in view.current if r.state is ReplicaState.STARTING)
    return max(0, min(missing, rollout_batch(view.target) - starting))


def _stop_first(view: DeploymentView, p: _Pass) -> None:
    """A rolling update with no room for its next new replica and none starting: make the room
    by draining a batch of old replicas first (Serve's own default order, maxSurge 0), so a full
    host still gets the update instead of waiting for good."""
    batch = rollout_batch(view.target)
    left = [r for r in view.old if r.container_id not in p.gone]
    for r in sorted(left, key=_drain_order(view.spec))[:batch]:
        p.drain(r, view.spec.graceful_shutdown_timeout_s, "replaced by the new version")


def _free_indexes(replicas: Sequence[ObservedReplica], count: int) -> list[int]:
    """The lowest indexes not held by a replica (a STOPPING one was renamed: its index is free)."""
    held = {r.index for r in replicas if r.state is not ReplicaState.STOPPING}
    free: list[int] = []
    candidate = 0
    while len(free) < count:
        if candidate not in held:
            free.append(candidate)
        candidate += 1
    return free


def _plan_deployment(view: DeploymentView, now: float, p: _Pass) -> None:
    spec = view.spec
    timeout, loop = spec.graceful_shutdown_timeout_s, spec.graceful_shutdown_wait_loop_s
    _clean_up(view.replicas, timeout, loop, now, p)
    if view.old:
        _retire_old(view, p)
    else:
        _scale_down(view, p)
    for r in view.running:
        if r.user_config_hash != spec.user_config_hash and r.container_id not in p.gone:
            p.actions.append(ReconfigureReplica(replica=r, spec=spec))
    if _in_backoff(view, now):
        return
    wanted = _wanted_starts(view)
    admitted = p.admit(spec, wanted)
    if view.old and wanted and not admitted and p.may_stop_first(view):
        _stop_first(view, p)
    for index in _free_indexes(view.replicas, admitted):
        p.actions.append(StartReplica(spec=spec, index=index))


def _plan_removed(replicas: Sequence[ObservedReplica], now: float, p: _Pass) -> None:
    """A deployment (or a whole application) no longer in the config: drain everything."""
    _clean_up(replicas, DEFAULT_DRAIN_TIMEOUT_S, DEFAULT_WAIT_LOOP_S, now, p)
    for r in replicas:
        if r.state in (ReplicaState.STARTING, ReplicaState.RUNNING):
            p.drain(r, DEFAULT_DRAIN_TIMEOUT_S, "deployment removed from the config")


def _budget(
    config: ServeConfig, observed: Sequence[ObservedReplica], capacity: Capacity | None
) -> admission.Budget | None:
    if capacity is None:
        return None
    demands = {spec.key: admission.demand(spec) for spec in config.deployments()}
    return admission.Budget(capacity, observed, demands)


def plan(
    config: ServeConfig,
    observed: Sequence[ObservedReplica],
    failures: Mapping[Key, FailureRecord],
    now: float,
    capacity: Capacity | None = None,
) -> Plan:
    """The actions that move `observed` one safe step towards `config` (see the module doc).
    With a `capacity`, new replicas start only while they fit (the rest are `pending`)."""
    deployments = views(config, observed, failures)
    gone = orphans(config, observed)
    p = _Pass(actions=[], gone=set(), budget=_budget(config, observed, capacity), pending={})
    for view in deployments.values():
        _plan_deployment(view, now, p)
    for replicas in gone.values():
        _plan_removed(replicas, now, p)
    actions = sorted(p.actions, key=lambda a: _ACTION_ORDER[type(a)])
    routable = frozenset(
        r.container_id
        for view in deployments.values()
        for r in view.replicas
        if r.state is ReplicaState.RUNNING and r.container_id not in p.gone
    )
    settled = not actions and not gone and all(v.converged for v in deployments.values())
    return Plan(actions=tuple(actions), routable=routable, settled=settled, pending=p.pending)


def _failed(replica: ObservedReplica, spec: DeploymentSpec) -> bool:
    """A current-version replica that exited, or that failed its health checks (each is counted
    once: `plan` removes the first and drains the second on the same pass)."""
    gone = (ReplicaState.FAILED, ReplicaState.UNHEALTHY)
    return replica.state in gone and replica.version == spec.version


def _stable(replica: ObservedReplica, spec: DeploymentSpec, now: float) -> bool:
    """RUNNING at the current version for STABLE_S: only then is a failure streak over. A replica
    that comes up and crashes a second later must not reset the backoff each time (a hot loop);
    Kubernetes' CrashLoopBackOff resets the same way, after a while of running."""
    return (
        replica.state is ReplicaState.RUNNING
        and replica.version == spec.version
        and now - replica.created_at >= STABLE_S
    )


def _count_failure(
    record: FailureRecord | None, replica: ObservedReplica, spec: DeploymentSpec, now: float
) -> FailureRecord:
    count = (record.count if record else 0) + 1
    return FailureRecord(
        version=spec.version,
        count=count,
        last_error=replica.error or GENERIC_FAILURE,
        retry_at=now + backoff_s(1.0, count),
    )


def next_failures(
    config: ServeConfig,
    observed: Sequence[ObservedReplica],
    failures: Mapping[Key, FailureRecord],
    now: float,
) -> dict[Key, FailureRecord]:
    """The failure records after this pass: FAILED or UNHEALTHY current-version replicas add to
    the count (backoff 1, 2, 4 ... 64 s); a current-version replica RUNNING for STABLE_S, or a
    new version, clears it.

    A stable replica clears the record before this pass's failures are counted, so a crash next
    to a healthy replica still waits one second before its replacement starts.
    """
    groups = group(observed)
    result: dict[Key, FailureRecord] = {}
    for spec in config.deployments():
        replicas = groups.get(spec.key, [])
        record = failures.get(spec.key)
        if record is not None and record.version != spec.version:
            record = None
        if any(_stable(r, spec, now) for r in replicas):
            record = None
        for replica in (r for r in replicas if _failed(r, spec)):
            record = _count_failure(record, replica, spec, now)
        if record is not None:
            result[spec.key] = record
    return result


# --- What a config change does to each deployment (`reconciler diff`) ---------------------------

CREATE, REMOVE, RESTART, RECONFIGURE, SCALE, UNCHANGED = (
    "create",
    "remove",
    "restart",
    "reconfigure",
    "scale",
    "unchanged",
)
# Settings baked into a container when it is created (env, healthcheck, stop timeout): a change
# needs no restart here, but only replicas created afterwards see it.
_BAKED_FIELDS = (
    "max_ongoing_requests",
    "graceful_shutdown_wait_loop_s",
    "graceful_shutdown_timeout_s",
    "health_check_period_s",
    "health_check_timeout_s",
)
_MAX_LISTED_FILES = 10


@dataclass(frozen=True)
class DeploymentChange:
    """What moving from one config to another does to one deployment. `kind` is the strongest
    effect (restart > reconfigure > scale > unchanged); `reasons` lists every difference found.
    Env var values never appear: they may be secret."""

    app: str
    deployment: str
    kind: str
    from_replicas: int
    to_replicas: int
    reasons: tuple[str, ...] = ()
    # How the replica count is decided, on each side, when either autoscales: "autoscaling 1-4"
    # or "3 replicas" (the counts above are then only where each would start).
    scaling: tuple[str, str] | None = None


def _env_reasons(old: tuple[tuple[str, str], ...], new: tuple[tuple[str, str], ...]) -> list[str]:
    before, after = dict(old), dict(new)
    reasons = []
    for name in sorted(before.keys() | after.keys()):
        if name not in before:
            reasons.append(f"env var {name} added")
        elif name not in after:
            reasons.append(f"env var {name} removed")
        elif before[name] != after[name]:
            reasons.append(f"env var {name} changed")
    return reasons


def _resource_reasons(old: DeploymentSpec, new: DeploymentSpec) -> list[str]:
    a, b = old.resources, new.resources
    pairs: list[tuple[str, object, object]] = [
        ("num_cpus", a.num_cpus, b.num_cpus),
        ("num_gpus", a.num_gpus, b.num_gpus),
        ("memory", a.memory, b.memory),
        ("resources", dict(a.custom), dict(b.custom)),
    ]
    return [f"{name} {x} -> {y}" for name, x, y in pairs if x != y]


def _code_reasons(old: DeploymentSpec, new: DeploymentSpec) -> list[str]:
    before = dict(old.code.files) if old.code else {}
    after = dict(new.code.files) if new.code else {}
    paths = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    reasons = []
    if paths:
        listed = ", ".join(paths[:_MAX_LISTED_FILES])
        more = len(paths) - _MAX_LISTED_FILES
        reasons.append(f"code changed: {listed}" + (f" and {more} more" if more > 0 else ""))
    old_dirs, new_dirs = (old.code.dirs if old.code else ()), (new.code.dirs if new.code else ())
    if old_dirs != new_dirs:
        reasons.append(f"code directories {list(old_dirs)} -> {list(new_dirs)}")
    return reasons


def _restart_reasons(old: DeploymentSpec, new: DeploymentSpec) -> list[str]:
    reasons = []
    if old.import_path != new.import_path:
        reasons.append(f"import_path changed: {old.import_path} -> {new.import_path}")
    if old.image != new.image:
        reasons.append(f"image changed: {old.image or 'default'} -> {new.image or 'default'}")
    reasons += _env_reasons(old.env, new.env)
    for name in sorted(old.secret_env ^ new.secret_env):
        now = "marked secret" if name in new.secret_env else "no longer secret"
        reasons.append(f"env var {name} {now}")
    reasons += _resource_reasons(old, new)
    if old.args != new.args:
        reasons.append("args changed")
    reasons += _code_reasons(old, new)
    reasons += _package_reasons(old.packages, new.packages)
    return reasons or ["version changed"]


def _package_reasons(old: PackageSet | None, new: PackageSet | None) -> list[str]:
    """'image rebuild (pip: numpy added, requests==2.31 -> requests==2.32)'."""
    either = new or old
    if old == new or either is None:
        return []
    key = either.installer
    before = {r.name: r.text for r in old.requirements} if old else {}
    after = {r.name: r.text for r in new.requirements} if new else {}
    changes = []
    for name in sorted(before.keys() | after.keys()):
        if name not in before:
            changes.append(f"{name} added")
        elif name not in after:
            changes.append(f"{name} removed")
        elif before[name] != after[name]:
            changes.append(f"{before[name]} -> {after[name]}")
    if old and new:
        if old.installer != new.installer:
            changes.append(f"{old.installer} -> {new.installer}")
        if old.check != new.check:
            changes.append(f"{key}_check {str(old.check).lower()} -> {str(new.check).lower()}")
        if old.pip_version != new.pip_version:
            changes.append(
                f"pip_version {old.pip_version or 'default'} -> {new.pip_version or 'default'}"
            )
    return [f"image rebuild ({key}: {', '.join(changes) or 'changed'})"]


_AUTOSCALING_TUNING = (
    "target_ongoing_requests",
    "initial_replicas",
    "metrics_interval_s",
    "look_back_period_s",
    "smoothing_factor",
    "upscale_smoothing_factor",
    "downscale_smoothing_factor",
    "upscaling_factor",
    "downscaling_factor",
    "upscale_delay_s",
    "downscale_delay_s",
    "downscale_to_zero_delay_s",
    "aggregation_function",
)


def _scaling(spec: DeploymentSpec) -> str:
    auto = spec.autoscaling_config
    if auto is None:
        return f"{spec.num_replicas} replica{'s' if spec.num_replicas != 1 else ''}"
    return f"autoscaling {auto.min_replicas}-{auto.max_replicas}"


def _scale_reasons(old: DeploymentSpec, new: DeploymentSpec) -> list[str]:
    """How the replica count changes: bounds for an autoscaled deployment (its count is the
    autoscaler's), a number otherwise."""
    a, b = old.autoscaling_config, new.autoscaling_config
    if a is None and b is None:
        same = old.num_replicas == new.num_replicas
        return [] if same else [f"num_replicas {old.num_replicas} -> {new.num_replicas}"]
    if a is None or b is None:
        return [f"{_scaling(old)} -> {_scaling(new)}"]
    reasons = []
    if (a.min_replicas, a.max_replicas) != (b.min_replicas, b.max_replicas):
        reasons.append(
            f"autoscaling bounds {a.min_replicas}-{a.max_replicas} -> "
            f"{b.min_replicas}-{b.max_replicas}"
        )
    tuned = [
        f"{name} {getattr(a, name)} -> {getattr(b, name)}"
        for name in _AUTOSCALING_TUNING
        if getattr(a, name) != getattr(b, name)
    ]
    if tuned or a.extra != b.extra:
        reasons.append("autoscaling_config changed" + (f": {', '.join(tuned)}" if tuned else ""))
    return reasons


def _scales(old: DeploymentSpec, new: DeploymentSpec) -> bool:
    a, b = old.autoscaling_config, new.autoscaling_config
    if a is None and b is None:
        return old.num_replicas != new.num_replicas
    if a is None or b is None:
        return True
    return (a.min_replicas, a.max_replicas) != (b.min_replicas, b.max_replicas)


def _light_reasons(old: DeploymentSpec, new: DeploymentSpec) -> list[str]:
    reasons = []
    if old.user_config_hash != new.user_config_hash:
        reasons.append("user_config changed")
    reasons += _scale_reasons(old, new)
    for name in _BAKED_FIELDS:
        if getattr(old, name) != getattr(new, name):
            reasons.append(f"{name} changed (applies to new replicas)")
    if old.route_prefix != new.route_prefix:
        reasons.append(f"route_prefix {old.route_prefix} -> {new.route_prefix}")
    return reasons


def _kind(old: DeploymentSpec, new: DeploymentSpec) -> str:
    if old.version != new.version:
        return RESTART
    if old.user_config_hash != new.user_config_hash:
        return RECONFIGURE
    return SCALE if _scales(old, new) else UNCHANGED


def classify(old: DeploymentSpec | None, new: DeploymentSpec | None) -> DeploymentChange:
    """What replacing `old` by `new` does to one deployment (None: absent on that side)."""
    if new is None:
        if old is None:
            raise ValueError("classify() needs at least one deployment")
        return DeploymentChange(old.app, old.name, REMOVE, old.num_replicas, 0, ("removed",))
    if old is None:
        auto = new.autoscaling_config
        scaling = ("", _scaling(new)) if auto is not None else None
        return DeploymentChange(new.app, new.name, CREATE, 0, new.num_replicas, ("new",), scaling)
    kind = _kind(old, new)
    reasons = _restart_reasons(old, new) if kind == RESTART else []
    reasons += _light_reasons(old, new)
    either = old.autoscaling_config is not None or new.autoscaling_config is not None
    return DeploymentChange(
        new.app,
        new.name,
        kind,
        old.num_replicas,
        new.num_replicas,
        tuple(reasons),
        (_scaling(old), _scaling(new)) if either else None,
    )


def diff_configs(base: ServeConfig | None, head: ServeConfig) -> list[DeploymentChange]:
    """One change per deployment of either config: head's in order, then those only in base."""
    before = {spec.key: spec for spec in base.deployments()} if base else {}
    changes = [classify(before.get(spec.key), spec) for spec in head.deployments()]
    after = {spec.key for spec in head.deployments()}
    changes += [classify(spec, None) for key, spec in before.items() if key not in after]
    return changes
