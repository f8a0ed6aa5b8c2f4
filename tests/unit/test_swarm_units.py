"""The Swarm engine's pure parts: what a replica's service is made of, names Swarm accepts, the
room the nodes offer, the ingress key, images in the registry, and how services and tasks (as
the Engine API returns them) become observed replicas and node statuses."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from reconciler.model import (
    IngressConfig,
    IngressServer,
    ReplicaState,
    Resources,
)
from reconciler.runtime import labels, swarm_specs
from reconciler.runtime.health import HealthMonitor
from reconciler.runtime.swarm_images import local_ref, split_tag
from reconciler.runtime.swarm_ingress import config_text, ingress_key, maxconn
from reconciler.runtime.swarm_observe import OTHER_TOKEN, Reading, SwarmObserver, engine_nodes
from reconciler.runtime.swarm_placement import capacity_of
from reconciler.settings import HostLimits
from tests.runtime.runtime_support import make_spec

TOKEN = swarm_specs.FileRef("sec1", "serve-x-token-abc", swarm_specs.TOKEN_FILE)


def _spec(**overrides: Any) -> Any:
    spec = make_spec(None, "Stand", **overrides)  # type: ignore[arg-type]
    return replace(spec, env=(("PLAIN", "1"), ("API_KEY", "hush")), secret_env=("API_KEY",))


def _service(spec: Any, **inputs: Any) -> dict[str, Any]:
    x = swarm_specs.ReplicaInputs(
        instance="inst",
        image="reg:5000/serve-reconciler/app:t@sha256:abc",
        network="net1",
        router_url="http://serve-inst-ingress:8001",
        token=TOKEN,
        token_id="tid",
        **inputs,
    )
    return swarm_specs.replica_service(spec, 2, "serve-inst-default-Stand-2", x)


def test_a_replica_service_keeps_what_changes_out_of_its_task_template() -> None:
    spec = _spec()
    s = _service(spec, secret_env=swarm_specs.FileRef("sec2", "env", "/run/serve-secrets/env.json"))
    assert s["Mode"] == {"Replicated": {"Replicas": 1}}
    assert s["Labels"][labels.OWNER] == "inst" and s["Labels"][labels.REPLICA] == "2"
    assert s["Labels"][labels.VERSION] == spec.version and s["Labels"][labels.TOKEN_ID] == "tid"
    container = s["TaskTemplate"]["ContainerSpec"]
    assert "Labels" not in container  # a change there would replace the task
    env = dict(e.split("=", 1) for e in container["Env"])
    assert env["PLAIN"] == "1" and "API_KEY" not in env  # the secret is a file, not Env
    assert "hush" not in json.dumps(s) and "s3cret" not in json.dumps(s)
    assert env["SERVE_CONTROL_TOKEN_FILE"] == swarm_specs.TOKEN_FILE
    assert [x["SecretID"] for x in container["Secrets"]] == ["sec1", "sec2"]
    assert container["Secrets"][0]["File"] == {
        "Name": swarm_specs.TOKEN_FILE, "UID": "65534", "GID": "65534", "Mode": 0o400}  # fmt: skip
    assert container["Image"].endswith("@sha256:abc") and container["User"] == "65534:65534"
    assert s["EndpointSpec"] == {
        "Mode": "dnsrr",
        "Ports": [{"Protocol": "tcp", "TargetPort": 8000, "PublishMode": "host"}],
    }
    assert s["TaskTemplate"]["RestartPolicy"] == {
        "Condition": "on-failure", "Delay": 10**9, "MaxAttempts": 1}  # fmt: skip
    assert s["TaskTemplate"]["Networks"] == [{"Target": "net1"}]
    assert container["StopGracePeriod"] == 10 * 10**9  # graceful_shutdown_timeout_s


def test_resources_are_reservations_and_gpus_whole_generic_units() -> None:
    spec = _spec(resources=Resources(num_cpus=0.5, num_gpus=0.5, memory=1 << 30,
                                     custom=(("TPU", 2.0),)))  # fmt: skip
    soft = swarm_specs.resources(spec)
    assert soft["Reservations"] == {
        "NanoCPUs": 500_000_000,
        "MemoryBytes": 1 << 30,
        "GenericResources": [
            {"DiscreteResourceSpec": {"Kind": "gpu", "Value": 1}},
            {"DiscreteResourceSpec": {"Kind": "TPU", "Value": 2}},
        ],
    }
    assert soft["Limits"] == {"Pids": 256}  # num_cpus caps nothing, as in Ray
    hard = swarm_specs.resources(spec, hard_limits=True)["Limits"]
    assert hard == {"Pids": 256, "NanoCPUs": 500_000_000, "MemoryBytes": 1 << 30}
    none = swarm_specs.resources(_spec(resources=Resources(num_cpus=0)))
    assert none["Reservations"] == {}


@pytest.mark.parametrize(
    "name",
    ["serve-default-fruit-MangoStand-0", "serve-a.b-c_d-0", "x" * 80, "serve-i-a--b-1", "-x-"],
)
def test_service_names_are_what_swarm_accepts_and_stay_distinct(name: str) -> None:
    made = swarm_specs.service_name(name)
    assert len(made) <= 63 and swarm_specs._SERVICE_NAME.match(made), made
    if len(name) <= 63 and swarm_specs._SERVICE_NAME.match(name):
        assert made == name
    assert swarm_specs.service_name(name + "1") != made
    obj = swarm_specs.object_name("i" * 60, "ingress-file", "0123456789ab")
    assert len(obj) <= 64 and obj.endswith("-0123456789ab")


def _node(name: str, state: str = "ready", availability: str = "active", **res: Any) -> Any:
    return {
        "ID": f"id-{name}",
        "Description": {
            "Hostname": name,
            "Resources": {"NanoCPUs": 2_000_000_000, "MemoryBytes": 4 << 30, **res},
        },
        "Status": {"State": state, "Addr": f"10.0.0.{len(name)}",
                   **({"Message": "heartbeat failure"} if state == "down" else {})},
        "Spec": {"Availability": availability, "Role": "worker"},
    }  # fmt: skip


GPUS = [{"NamedResourceSpec": {"Kind": "gpu", "Value": "GPU-0"}},
        {"NamedResourceSpec": {"Kind": "gpu", "Value": "GPU-1"}},
        {"DiscreteResourceSpec": {"Kind": "TPU", "Value": 4}}]  # fmt: skip


def test_capacity_is_the_sum_over_ready_active_nodes() -> None:
    nodes = [
        _node("n1"),
        _node("n2", GenericResources=GPUS),
        _node("n3", state="down"),
        _node("n4", availability="drain"),
    ]
    c = capacity_of(nodes, HostLimits(cpu_overcommit=2.0))
    assert (c.cores, c.cpus, c.memory) == (4.0, 8.0, 8 << 30)
    assert c.gpus == 2 and c.custom == (("TPU", 4.0),)
    assert capacity_of([_node("n3", state="down")], HostLimits()).cpus == 0


def _task(tid: str, service: str, node: str = "id-n1", state: str = "running",
          desired: str = "running", created: str = "2026-01-01T00:00:01.5Z", **status: Any) -> Any:
    return {"ID": tid, "ServiceID": service, "NodeID": node, "DesiredState": desired,
            "CreatedAt": created, "Status": {"State": state, **status}}  # fmt: skip


def _replica_service(sid: str, **extra_labels: str) -> Any:
    lab = {labels.OWNER: "inst", labels.ROLE: "replica", labels.APP: "default",
           labels.DEPLOYMENT: "Stand", labels.REPLICA: sid[-1], labels.VERSION: "v1",
           labels.TOKEN_ID: "tid", **extra_labels}  # fmt: skip
    return {"ID": sid, "Spec": {"Name": f"serve-inst-default-Stand-{sid[-1]}", "Labels": lab},
            "CreatedAt": "2026-01-01T00:00:00Z"}  # fmt: skip


def _observe(services: list[Any], tasks: list[Any], nodes: list[Any]) -> dict[str, Any]:
    logs = {"t-crash": "Traceback (most recent call last):\n  x\nValueError: no stand\n"}
    monitor = HealthMonitor(lambda url, timeout: None)
    observer = SwarmObserver(token="tok", token_id="tid", logs=lambda t: logs.get(t, ""),
                             monitor=monitor)  # fmt: skip
    try:
        seen = observer.observe(Reading.of(services, tasks, nodes), services)
    finally:
        monitor.close()
    return {r.name[-1]: r for r in seen}


def test_tasks_become_replica_states_and_say_why_they_wait() -> None:
    nodes = [_node("n1"), _node("n2", state="down")]
    services = [_replica_service(f"s{i}") for i in range(6)]
    services[0] = _replica_service("s0", **{labels.DRAIN_DEADLINE: "1700000000"})
    services[5] = _replica_service("s5", **{labels.TOKEN_ID: "another"})
    ports = {"PortStatus": {"Ports": [{"TargetPort": 8000, "PublishedPort": 1}]}}
    tasks = [
        _task("t-drain", "s0", **ports),
        # s1: none yet (Swarm is making it)
        _task("t-crash", "s2", state="failed", desired="shutdown", Err="task: non-zero exit (1)",
              ContainerStatus={"ExitCode": 1}),
        _task("t-lost", "s3", node="id-n2"),  # its node is down: its 'running' is stale
        _task("t-old", "s4", node="id-n2", desired="shutdown", created="2026-01-01T00:00:01Z"),
        _task("t-pend", "s4", node="", state="pending", created="2026-01-01T00:00:02Z",
              Err="no suitable node (insufficient resources on 1 node)"),
        _task("t-token", "s5", **ports),
    ]
    seen = _observe(services, tasks, nodes)
    assert seen["0"].state is ReplicaState.STOPPING and seen["0"].drain_deadline == 1.7e9
    assert seen["1"].state is ReplicaState.STARTING and seen["1"].waiting is None
    assert seen["2"].state is ReplicaState.FAILED
    assert seen["2"].error == "ValueError: no stand (exit code 1)"
    lost = seen["3"]
    assert lost.state is ReplicaState.STARTING and lost.control_url is None
    assert lost.waiting and "n2 (10.0.0.2) is down: heartbeat failure" in lost.waiting
    moving = seen["4"]
    assert moving.container_id == "t-pend" and moving.state is ReplicaState.STARTING
    assert moving.waiting == (
        "no suitable node (insufficient resources on 1 node); "
        "moved off node n2 (10.0.0.2) is down: heartbeat failure"
    )
    assert seen["5"].state is ReplicaState.UNHEALTHY and seen["5"].error == OTHER_TOKEN
    view = {n.name: n for n in engine_nodes(Reading.of(services, tasks, nodes), {"id-n1": 3})}
    assert view["n1"].ready and view["n1"].replicas == 3
    assert not view["n2"].ready and view["n2"].message == "heartbeat failure"


def _ingress(text_extra: str = "", servers: tuple[IngressServer, ...] = ()) -> IngressConfig:
    skeleton = (
        "global\n    stats socket ipv4@0.0.0.0:8404 level admin\n"
        f"frontend f\n    http-request return string @@CONFIG_VERSION@@{text_extra}\n"
    )
    return IngressConfig(text=skeleton, skeleton=skeleton, servers=servers, backends=("be_1",))


def test_the_ingress_key_moves_with_its_skeleton_never_with_its_servers() -> None:
    one = IngressServer("be_1", "s1", "10.0.1.2", 8000, ("check", "maxconn", "5"))
    two = replace(one, name="s2", options=("check", "maxconn", "9"))
    base = ingress_key(_ingress(), 8000, "img")
    assert ingress_key(_ingress(servers=(one, two)), 8000, "img") == base
    assert ingress_key(_ingress(" x"), 8000, "img") != base
    assert ingress_key(_ingress(), 8001, "img") != base
    assert ingress_key(_ingress(), 8000, "img2") != base
    assert (maxconn(one), maxconn(two), maxconn(replace(one, options=()))) == (5, 9, None)
    text = config_text(_ingress(), base)
    assert "8404" not in text and base in text and "@@CONFIG_VERSION@@" not in text
    with pytest.raises(Exception, match="TCP admin"):
        config_text(replace(_ingress(), text="global\n"), base)


def test_registry_references_and_the_local_tags_they_came_from() -> None:
    assert split_tag("serve-reconciler/app:inst-abc") == ("serve-reconciler/app", "inst-abc")
    assert split_tag("host:5000/repo") == ("host:5000/repo", "latest")
    assert split_tag("python") == ("python", "latest")
    pinned = "10.0.0.1:5000/serve-reconciler/app:inst-abc@sha256:00ff"
    assert local_ref(pinned, "10.0.0.1:5000") == "serve-reconciler/app:inst-abc"
    assert local_ref("serve-reconciler/app:t", None) == "serve-reconciler/app:t"
