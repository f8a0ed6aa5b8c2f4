"""ServiceSpec builders for the lab's tests and the design spike: one Swarm service per Serve
replica (replicas 1, bookkeeping in ServiceSpec.Labels), a global HAProxy ingress, and a tiny
replica program that says who answered. Plain Engine API JSON, nothing of the reconciler's own."""

from __future__ import annotations

import base64
from typing import Any

BASE_IMAGE = "serve-reconciler/python:bookworm"

# A replica stand-in: answers GET with its name and container hostname, exits at once on SIGTERM
# (as PID 1 a Python process would otherwise ignore it and wait out the stop grace period).
REPLICA_PROGRAM = """\
import http.server, os, signal, socket
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{os.environ.get('REPLICA', '?')} {socket.gethostname()}\\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *_):
        pass
http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), H).serve_forever()
"""


def replica_service(
    name: str,
    *,
    image: str = BASE_IMAGE,
    labels: dict[str, str] | None = None,
    network: str | None = None,
    control_port: int | None = 8080,
    env: dict[str, str] | None = None,
    resources: dict[str, Any] | None = None,
    constraints: list[str] | None = None,
    replicas: int = 1,
) -> dict[str, Any]:
    """One Serve replica as a 1-replica service: labels on the service (changing them does not
    replace the task), the port published in host mode on an ephemeral port of the node."""
    container: dict[str, Any] = {
        "Image": image,
        "Command": ["python3", "-c", REPLICA_PROGRAM],
        "Env": [f"{k}={v}" for k, v in {"REPLICA": name, **(env or {})}.items()],
        "StopGracePeriod": 2_000_000_000,
    }
    template: dict[str, Any] = {
        "ContainerSpec": container,
        "RestartPolicy": {"Condition": "any", "Delay": 1_000_000_000},
    }
    if network:
        template["Networks"] = [{"Target": network}]
    if resources:
        template["Resources"] = resources
    if constraints:
        template["Placement"] = {"Constraints": constraints}
    spec: dict[str, Any] = {
        "Name": name,
        "Labels": labels or {},
        "TaskTemplate": template,
        "Mode": {"Replicated": {"Replicas": replicas}},
        "EndpointSpec": {"Mode": "dnsrr"},
    }
    if control_port:
        spec["EndpointSpec"]["Ports"] = [
            {"Protocol": "tcp", "TargetPort": control_port, "PublishMode": "host"}]
    return spec


def haproxy_config(port: int, servers: list[tuple[str, str]]) -> str:
    lines = [
        "global", "  maxconn 2000", "defaults", "  mode http", "  timeout connect 2s",
        "  timeout client 10s", "  timeout server 10s", "  retry-on conn-failure", "  retries 2",
        "  option redispatch", "frontend ingress", f"  bind :{port}", "  default_backend replicas",
        "backend replicas", "  balance roundrobin",
    ]
    lines += [f"  server {name} {addr} check inter 1s" for name, addr in servers]
    return "\n".join(lines) + "\n"


def config_object(name: str, text: str) -> dict[str, Any]:
    return {"Name": name, "Data": base64.b64encode(text.encode()).decode()}


def haproxy_service(name: str, *, network: str, port: int, config_id: str,
                    config_name: str) -> dict[str, Any]:
    """The ingress as a global service, its port published in host mode on every node: this
    kernel has no IPVS, so the routing mesh does not work here (see docs/swarm-design.md)."""
    return {
        "Name": name,
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": BASE_IMAGE,
                # -W (master-worker): as PID 1 it stops on SIGTERM, plain -db waits for SIGKILL
                "Command": ["haproxy", "-W", "-db", "-f", "/etc/haproxy/ingress.cfg"],
                "Configs": [{
                    "File": {"Name": "/etc/haproxy/ingress.cfg", "UID": "0", "GID": "0",
                             "Mode": 0o444},
                    "ConfigID": config_id, "ConfigName": config_name,
                }],
            },
            "Networks": [{"Target": network}],
        },
        "Mode": {"Global": {}},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": [
            {"Protocol": "tcp", "TargetPort": port, "PublishedPort": port,
             "PublishMode": "host"}]},
    }


def overlay_network(name: str) -> dict[str, Any]:
    return {"Name": name, "Driver": "overlay", "Attachable": True, "CheckDuplicate": True}
