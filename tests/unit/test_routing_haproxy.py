"""The rendered config run by the real HAProxy in front of real HTTP servers.

Everything runs inside a private network namespace (`unshare -n`): this module re-runs itself as a
script there, starts one small HTTP server per replica address on the namespace's loopback, starts
HAProxy with the config, sends the requests it is given and prints what came back. Nothing touches
the host's network, so the fixed ports (8000, 8001) cannot clash with anything.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script, too
from tests.support import wait_for

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"


# --- inside the namespace ----------------------------------------------------------------------


class Echo(BaseHTTPRequestHandler):
    """A replica stand-in: says who it is and what it received."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        reply = json.dumps(
            {
                "server": self.server.server_address[0],  # type: ignore[index]
                "method": self.command,
                "path": self.path,
                "body": body,
                "x_test": self.headers.get("X-Test"),
                "forwarded_for": self.headers.get("X-Forwarded-For"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _wait_for_port(port: int, deadline_s: float, proxy: subprocess.Popen[bytes]) -> None:
    def listening() -> bool:
        if proxy.poll() is not None:
            raise RuntimeError(f"haproxy exited with {proxy.returncode}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        return False

    wait_for(listening, timeout=deadline_s, interval=0.05, what=f"haproxy on port {port}")


def _request(port: int, method: str, path: str, body: str | None) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers={"X-Test": "yes"})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    return {"status": response.status, "type": response.getheader("Content-Type"), "text": text}


def _run_in_namespace(job: dict[str, Any]) -> list[dict[str, Any]]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    servers = [ThreadingHTTPServer((ip, 8000), Echo) for ip in job["listen"]]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = subprocess.Popen([HAPROXY, "-db", "-f", job["config"]], stdout=subprocess.DEVNULL)
    try:
        _wait_for_port(8000, 10, proxy)
        _wait_for_port(8001, 10, proxy)
        return [_request(*r) for r in job["requests"]]
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


if __name__ == "__main__":
    print(json.dumps(_run_in_namespace(json.load(sys.stdin))))
    sys.exit(0)


# --- the test ----------------------------------------------------------------------------------

from dataclasses import replace  # noqa: E402

from test_plan import config, rep, spec  # noqa: E402

from reconciler.model import (  # noqa: E402
    INGRESS_VERSION_PATH,
    INGRESS_VERSION_TOKEN,
    HttpOptions,
    ServeConfig,
)
from reconciler.routing import STATS_SOCKET, render_haproxy  # noqa: E402


def _config() -> ServeConfig:
    fruit = spec("Market", app="fruit", n=3, route_prefix="/fruit", is_ingress=True)
    stand = spec("MangoStand", app="fruit", n=1)
    deep = spec("Deep", app="deep", n=1, route_prefix="/fruit/deep", is_ingress=True)
    dead = spec("Ingress", app="dead", n=1, route_prefix="/dead", is_ingress=True)
    cfg = config(fruit, stand, deep, dead)
    prefixes = {"fruit": "/fruit", "deep": "/fruit/deep", "dead": "/dead"}
    return replace(
        cfg,
        http=HttpOptions(request_timeout_s=5),
        applications=tuple(replace(a, route_prefix=prefixes[a.name]) for a in cfg.applications),
    )


def _render(tmp_path: Path) -> Path:
    cfg = _config()
    specs = {s.name: s for s in cfg.deployments()}
    replicas = [
        rep(specs["Market"], 0, network_ip="127.0.0.2"),
        rep(specs["Market"], 1, network_ip="127.0.0.3"),
        rep(specs["Market"], 2, network_ip="127.0.0.9"),  # nothing listens: refused, retried
        rep(specs["MangoStand"], 0, network_ip="127.0.0.4"),
        rep(specs["Deep"], 0, network_ip="127.0.0.5"),
    ]
    text = render_haproxy(cfg, replicas, frozenset(r.container_id for r in replicas))
    # The only edits: listen on the namespace's 127.0.0.1 (the replicas hold :8000 on other
    # loopback addresses) and keep the runtime socket in the test's directory.
    text = text.replace("bind :8000", "bind 127.0.0.1:8000").replace(
        STATS_SOCKET, str(tmp_path / "haproxy.sock")
    )
    text = text.replace(INGRESS_VERSION_TOKEN, NUMERIC_LOOKING_VERSION)  # as the engine stamps it
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return path


# A sha256 prefix that is also a JSON number (seen in CI: read as JSON it was 1.68251747435e+147).
NUMERIC_LOOKING_VERSION = "168251747435e136"

REQUESTS = [
    (8000, "POST", "/fruit/buy?x=1", '["MANGO", 2]'),
    (8000, "GET", "/fruit/deep/x", None),
    (8000, "GET", "/fruit/deeper", None),
    (8000, "GET", "/fruitless", None),
    (8000, "GET", "/dead/x", None),
    (8000, "GET", "/-/routes", None),
    (8000, "GET", "/-/healthz", None),
    (8001, "POST", "/-/call/fruit/MangoStand/price", "[2]"),
    (8001, "GET", "/-/call/fruit/Nope/x", None),
    (8000, "GET", '/No/"where"', None),
    (8000, "GET", INGRESS_VERSION_PATH, None),
    *[(8000, "GET", "/fruit", None)] * 12,
]


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    probe = subprocess.run([UNSHARE, "-n", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0 or not Path(HAPROXY).exists():
        pytest.skip("needs haproxy and a private network namespace (unshare -n, as root)")
    tmp_path = tmp_path_factory.mktemp("haproxy")
    job = {
        "config": str(_render(tmp_path)),
        "listen": ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"],
        "requests": REQUESTS,
    }
    result = subprocess.run(
        [UNSHARE, "-n", sys.executable, __file__],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent,
    )
    assert result.returncode == 0, result.stderr
    answers: list[dict[str, Any]] = json.loads(result.stdout)
    assert len(answers) == len(REQUESTS)
    return answers


def _json(answer: dict[str, Any], status: int = 200) -> Any:
    assert answer["status"] == status, answer
    assert answer["type"] == "application/json", answer
    return json.loads(answer["text"])


def test_prefix_routes_reach_the_ingress_with_body_and_headers(answers: list[Any]) -> None:
    buy = _json(answers[0])
    assert buy["server"] in ("127.0.0.2", "127.0.0.3")
    assert (buy["method"], buy["path"], buy["body"]) == ("POST", "/fruit/buy?x=1", '["MANGO", 2]')
    assert buy["x_test"] == "yes" and buy["forwarded_for"] == "127.0.0.1"


def test_longest_prefix_wins_and_prefixes_match_whole_segments(answers: list[Any]) -> None:
    assert _json(answers[1])["server"] == "127.0.0.5"  # /fruit/deep beats /fruit
    assert _json(answers[2])["server"] in ("127.0.0.2", "127.0.0.3")  # /fruit/deeper is /fruit's
    assert _json(answers[3], 404) == {"error": "no application at this path", "path": "/fruitless"}
    # the path is JSON-escaped into the body, never pasted raw
    assert _json(answers[9], 404)["path"] == '/No/"where"'


def test_deployment_without_replicas_answers_503(answers: list[Any]) -> None:
    assert _json(answers[4], 503) == {
        "error": "no healthy replica of deployment 'Ingress' in application 'dead'"
    }


def test_routes_and_health_endpoints(answers: list[Any]) -> None:
    assert _json(answers[5]) == {"/dead": "dead", "/fruit": "fruit", "/fruit/deep": "deep"}
    assert answers[6]["status"] == 200


def test_handle_calls_go_through_the_router(answers: list[Any]) -> None:
    call = _json(answers[7])
    assert (call["server"], call["path"], call["body"]) == (
        "127.0.0.4",
        "/-/call/fruit/MangoStand/price",
        "[2]",
    )
    assert _json(answers[8], 404) == {
        "error": "no deployment at this path",
        "path": "/-/call/fruit/Nope/x",
    }


def test_a_refused_connection_is_retried_on_another_replica(answers: list[Any]) -> None:
    spread = [_json(a)["server"] for a in answers[11:]]
    assert set(spread) == {"127.0.0.2", "127.0.0.3"}  # every request answered, both used


def test_the_config_version_is_served_verbatim(answers: list[Any]) -> None:
    assert answers[10]["status"] == 200 and answers[10]["type"] == "text/plain", answers[10]
    assert answers[10]["text"].strip() == NUMERIC_LOOKING_VERSION
