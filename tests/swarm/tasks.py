"""Reading a swarm's tasks the way a reconciler on the host would: which task of a service is
current, where its host-mode port answers (Task.Status.PortStatus at the node's address), its
overlay address (NetworksAttachments), and HTTP to it."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

from tests.swarm.engine import Engine

T = TypeVar("T")


def poll(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll until `probe` returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # a probe may fail while things come up
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def current_tasks(engine: Engine, service: str) -> list[dict[str, Any]]:
    """The service's tasks the orchestrator wants running (the history is left out)."""
    return engine.tasks(service=[service], **{"desired-state": ["running"]})


def running(engine: Engine, service: str) -> list[dict[str, Any]]:
    return [t for t in current_tasks(engine, service) if t["Status"]["State"] == "running"]


def node_addrs(engine: Engine) -> dict[str, str]:
    """Node id -> the address the node reported (its advertise address here)."""
    return {n["ID"]: n["Status"].get("Addr", "") for n in engine.nodes()}


def node_names(engine: Engine) -> dict[str, str]:
    return {n["ID"]: n["Description"]["Hostname"] for n in engine.nodes()}


def host_port(task: dict[str, Any], target: int) -> int | None:
    """The ephemeral node port that host-mode publishing gave `target` (listed once per address
    family: the same number twice)."""
    for p in (task["Status"].get("PortStatus") or {}).get("Ports") or []:
        if p.get("TargetPort") == target and p.get("PublishMode") == "host":
            return int(p["PublishedPort"])
    return None


def endpoint(task: dict[str, Any], target: int, addrs: dict[str, str]) -> str | None:
    port = host_port(task, target)
    return f"{addrs[task['NodeID']]}:{port}" if port else None


def overlay_ip(task: dict[str, Any], network: str) -> str | None:
    for att in task.get("NetworksAttachments") or []:
        if att["Network"]["Spec"]["Name"] == network and att.get("Addresses"):
            return str(att["Addresses"][0]).split("/")[0]
    return None


def http_get(addr: str, path: str = "/", timeout: float = 3.0) -> str:
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=timeout) as resp:
        return str(resp.read().decode())
