"""DockerEngine against the real engine: start, observe, reconfigure, drain, remove, failures,
adoption by a restarted reconciler, ownership and hardening."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from runtime_support import BASE_IMAGE, call_json, http, make_spec, observe_until

from reconciler.errors import EngineError, EngineUnavailable
from reconciler.model import CodeTree, ReplicaState
from reconciler.runtime import labels
from reconciler.runtime.docker_engine import DockerEngine

pytestmark = pytest.mark.docker


@pytest.fixture
def engine(instance_name: str, docker_client: Any) -> Iterator[DockerEngine]:
    yield DockerEngine(
        instance=instance_name, default_image=BASE_IMAGE, docker_client=docker_client
    )


def _state(replicas: list[Any], index: int) -> Any:
    return next((r for r in replicas if r.index == index), None)


def _started(container: Any) -> tuple[str, int]:
    return container.attrs["State"]["StartedAt"], container.attrs["State"]["Pid"]


def _running(count: int) -> Any:
    return lambda rs: len(rs) == count and all(r.state is ReplicaState.RUNNING for r in rs)


def test_replica_lifecycle(engine: DockerEngine, code_tree: CodeTree, docker_client: Any) -> None:
    spec = make_spec(code_tree, user_config={"price": 3})
    engine.start_replica(spec, 0)
    engine.start_replica(spec, 1)
    replicas = observe_until(engine, _running(2))
    for r in replicas:
        assert r.version == spec.version and r.app == "default" and r.deployment == "Stand"
        assert r.user_config_hash == spec.user_config_hash
        assert r.control_url and r.control_url.startswith("http://127.0.0.1:")
        assert r.network_ip and r.name == f"serve-{engine.network_name[6:]}-default-Stand-{r.index}"
    assert sorted(r.index for r in replicas) == [0, 1]
    first = _state(replicas, 0)
    assert call_json(first.control_url + "/-/call/default/Stand/check_price", {"args": [2]})[1] == {
        "result": 6
    }
    started_at = docker_client.api.inspect_container(first.container_id)["State"]["StartedAt"]

    # reconfigure in place: same container, same start, new answer
    new = make_spec(code_tree, user_config={"price": 5})
    engine.reconfigure(first, new)
    assert call_json(first.control_url + "/-/call/default/Stand/check_price", {"args": [2]})[1] == {
        "result": 10
    }
    again = docker_client.api.inspect_container(first.container_id)["State"]
    assert again["StartedAt"] == started_at and again["Running"]
    bad = make_spec(code_tree, user_config={"fail": True})
    with pytest.raises(EngineError, match="ValueError: bad price config"):
        engine.reconfigure(first, bad)

    # a restarted reconciler adopts both replicas, learns their config hash, changes nothing
    ours = {"label": f"{labels.OWNER}={engine._instance}"}
    before = {c.id: _started(c) for c in docker_client.containers.list(all=True, filters=ours)}
    fresh = DockerEngine(instance=engine._instance, default_image=BASE_IMAGE)
    seen = {r.index: r for r in observe_until(fresh, _running(2))}
    assert seen[0].container_id == first.container_id
    assert seen[0].user_config_hash == new.user_config_hash
    assert seen[1].user_config_hash == spec.user_config_hash
    after = {c.id: _started(c) for c in docker_client.containers.list(all=True, filters=ours)}
    assert after == before

    # drain: renamed at once (name free for a replacement), STOPPING, still running; told to
    # stop, it exits
    second = seen[1]
    engine.drain(second, 10)
    draining = _state(engine.observe(), 1)
    assert draining.state is ReplicaState.STOPPING and "--drain-" in draining.name
    assert draining.drain_deadline and draining.drain_deadline > 0 and not draining.stop_sent
    assert draining.in_flight is None  # no ingress here to say what is left on it
    engine.stop(draining)
    assert _state(engine.observe(), 1).stop_sent
    observe_until(engine, lambda rs: _state(rs, 1).drain_deadline == 0, 30)
    exited = docker_client.api.inspect_container(second.container_id)["State"]
    assert exited["Status"] == "exited" and exited["ExitCode"] == 0

    engine.remove(_state(engine.observe(), 1))
    engine.remove(_state(engine.observe(), 1) or second)  # already gone: not an error
    assert [r.index for r in engine.observe()] == [0]


def test_constructor_failure_is_failed_with_the_user_error(
    engine: DockerEngine, code_tree: CodeTree
) -> None:
    spec = make_spec(code_tree, name="Broken", import_path="shop:broken_app")
    engine.start_replica(spec, 0)
    replicas = observe_until(engine, lambda rs: rs and rs[0].state is ReplicaState.FAILED)
    assert replicas[0].error == "RuntimeError: the stand has no fruit (exit code 1)"


def test_unhealthy_replica_reports_check_health_error(
    engine: DockerEngine, code_tree: CodeTree
) -> None:
    spec = make_spec(code_tree, user_config={"price": 3}, health_check_period_s=0.5)
    engine.start_replica(spec, 0)
    replica = observe_until(engine, _running(1))[0]
    engine.reconfigure(replica, make_spec(code_tree, user_config={"healthy": False}))
    replicas = observe_until(engine, lambda rs: rs[0].state is ReplicaState.UNHEALTHY, 30)
    assert replicas[0].error == "RuntimeError: the stand is closed"


def test_foreign_containers_are_never_listed_or_touched(
    engine: DockerEngine, code_tree: CodeTree, docker_client: Any
) -> None:
    name = f"serve-{engine.network_name[6:]}-default-Stand-0"
    foreign = docker_client.containers.create(
        BASE_IMAGE, ["sleep", "60"], name=name, labels={labels.TEST: "true"}
    )
    try:
        assert engine.observe() == []
        with pytest.raises(EngineError, match="not own"):
            engine.start_replica(make_spec(code_tree), 0)
        engine.remove_all()
        foreign.reload()
        assert foreign.status == "created"
    finally:
        foreign.remove(force=True)


def test_stale_container_is_replaced_and_a_live_one_left_alone(
    engine: DockerEngine, code_tree: CodeTree
) -> None:
    spec = make_spec(code_tree)
    name = f"serve-{engine.network_name[6:]}-default-Stand-0"
    engine._ensure_network()
    stale_id = engine._create(spec, 0, name, BASE_IMAGE)  # a pass that died before start
    assert [r.state for r in engine.observe()] == [ReplicaState.STALE]
    engine.start_replica(spec, 0)
    running = observe_until(engine, _running(1))
    assert running[0].container_id != stale_id
    engine.start_replica(spec, 0)  # the name is taken by a live replica: left as it is
    assert [r.container_id for r in engine.observe()] == [running[0].container_id]


def test_a_name_shared_by_two_deployments_is_an_error_not_a_silent_skip(
    engine: DockerEngine, code_tree: CodeTree
) -> None:
    # app x-y + deployment Stand and app x + deployment y-Stand both name serve-<i>-x-y-Stand-0;
    # the loader refuses such a config, and the engine says so instead of taking the other's
    # replica for its own (that deployment never started, silently)
    engine.start_replica(make_spec(code_tree, app="x-y"), 0)
    running = observe_until(engine, _running(1))
    with pytest.raises(
        EngineError, match="taken by replica 0 of deployment 'Stand' in application 'x-y'"
    ):
        engine.start_replica(make_spec(code_tree, app="x", name="y-Stand"), 0)
    assert [r.container_id for r in engine.observe()] == [running[0].container_id]


def test_hardening_and_resources(
    engine: DockerEngine, code_tree: CodeTree, docker_client: Any
) -> None:
    from reconciler.model import Resources

    spec = make_spec(code_tree, resources=Resources(num_cpus=0.5, memory=128 * 2**20))
    engine.start_replica(spec, 0)
    replica = observe_until(engine, lambda rs: len(rs) == 1)[0]
    info = docker_client.api.inspect_container(replica.container_id)
    host, config = info["HostConfig"], info["Config"]
    assert host["Privileged"] is False and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["PidsLimit"] == 256
    assert not host["Binds"] and not info["Mounts"]
    # Ray's logical resources: a CPU weight and a memory reservation, no quota, no limit.
    assert host["CpuShares"] == 512 and host["MemoryReservation"] == 128 * 2**20
    assert host["NanoCpus"] == 0 and host["Memory"] == 0
    assert config["User"] == "65534:65534" and config["StopTimeout"] == 10
    # The reconciler checks health over HTTP (health.py); an image's HEALTHCHECK is switched off.
    assert config["Healthcheck"] == {"Test": ["NONE"]}
    assert host["PortBindings"]["8000/tcp"][0]["HostIp"] == "127.0.0.1"


def test_hard_limits_make_num_cpus_and_memory_caps(
    engine: DockerEngine, code_tree: CodeTree, docker_client: Any
) -> None:
    from reconciler.model import Resources
    from reconciler.settings import HostLimits

    strict = DockerEngine(
        instance=engine._instance, default_image=BASE_IMAGE, limits=HostLimits(hard_limits=True)
    )
    spec = make_spec(code_tree, resources=Resources(num_cpus=0.5, memory=128 * 2**20))
    strict.start_replica(spec, 0)
    replica = observe_until(strict, lambda rs: len(rs) == 1)[0]
    host = docker_client.api.inspect_container(replica.container_id)["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 128 * 2**20
    assert replica.demand is not None and replica.demand.cpus == 0.5  # read back from its label
    assert strict.capacity().cores >= 1 and strict.capacity().max_replicas >= 100


def test_image_allowlist_and_unreachable_engine(engine: DockerEngine, code_tree: CodeTree) -> None:
    strict = DockerEngine(
        instance=engine._instance, default_image=BASE_IMAGE, image_allowlist=("registry.example/*",)
    )
    with pytest.raises(EngineError, match="is not allowed by --allowed-images"):
        strict.start_replica(make_spec(code_tree), 0)
    import docker

    nowhere = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41")
    gone = DockerEngine(instance="x", default_image=BASE_IMAGE, docker_client=nowhere)
    with pytest.raises(EngineUnavailable):
        gone.observe()
    with pytest.raises(EngineUnavailable):
        gone.ping()


def test_sigterm_drains_in_flight_request_and_max_ongoing_serialises(
    engine: DockerEngine, code_tree: CodeTree, docker_client: Any
) -> None:
    import threading

    spec = make_spec(code_tree, name="Slow", import_path="shop:slow_app", max_ongoing_requests=1)
    engine.start_replica(spec, 0)
    replica = observe_until(engine, _running(1))[0]
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(http(replica.control_url + "/?s=0.4")[0]))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200, 200, 200]
    assert http(replica.control_url + "/?s=0")[1] == b'{"peak":1}'

    slow: list[int] = []
    inflight = threading.Thread(target=lambda: slow.append(http(replica.control_url + "/?s=2")[0]))
    inflight.start()
    observe_until(engine, lambda rs: call_json(rs[0].control_url + "/-/state")[1]["ongoing"] == 1)
    engine.drain(replica, 10)
    engine.stop(replica)  # told to stop with a request in flight: it finishes it first
    inflight.join(30)
    assert slow == [200]
    observe_until(engine, lambda rs: rs[0].drain_deadline == 0, 30)
    state = docker_client.api.inspect_container(replica.container_id)["State"]
    assert state["ExitCode"] == 0
    assert b"__del__ called" in docker_client.api.logs(replica.container_id)
