"""A plain GET /status is served by waitress's loop thread itself (api/server.py), not handed to
a worker: it is answered while every worker is busy, and responses on a connection stay in the
order of its requests when inline and worker requests are pipelined on it."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
from collections.abc import Iterator

import pytest
import requests
from api_support import BRANCH, SECRET, FakeState, single_snapshot

from reconciler.api import ApiServer, create_app
from reconciler.metrics import Metrics

BlockingApi = tuple[ApiServer, threading.Event, threading.Event, FakeState]


@pytest.fixture
def blocking_api() -> Iterator[BlockingApi]:
    """The real app with one worker thread and an extra route that holds it until released."""
    state = FakeState()
    state.snapshot = single_snapshot()
    app = create_app(
        snapshot=lambda: state.snapshot,
        history=state.get_history,
        trigger=state.trigger,
        health=lambda: state.health,
        metrics=Metrics(),
        branch=BRANCH,
        webhook_secret=SECRET,
    )
    entered, release = threading.Event(), threading.Event()

    def hold() -> str:
        entered.set()
        release.wait(30)
        return "released"

    app.add_url_rule("/hold", view_func=hold)
    server = ApiServer(app, port=0, threads=1)
    server.start()
    yield server, entered, release, state
    release.set()
    server.stop()


def test_plain_status_is_answered_while_every_worker_is_busy(blocking_api: BlockingApi) -> None:
    server, entered, release, _ = blocking_api
    url = f"http://127.0.0.1:{server.port}"
    held = threading.Thread(target=requests.get, args=(url + "/hold",), kwargs={"timeout": 30})
    held.start()
    assert entered.wait(10), "the holding request never reached its worker"

    for query in ("", "?format=yaml"):
        response = requests.get(url + "/status" + query, timeout=5)
        assert response.status_code == 200
        assert "MangoStand" in response.text
    with pytest.raises(requests.Timeout):  # the only worker is busy: Flask's routes wait
        requests.get(url + "/healthz", timeout=0.5)

    release.set()
    held.join(10)
    assert requests.get(url + "/healthz", timeout=5).status_code == 200


def _read_response(reader: socket.SocketIO, buffered: bytearray) -> tuple[int, str, bytes]:
    while b"\r\n\r\n" not in buffered:
        chunk = reader.read(65536)
        assert chunk, "the server closed the connection early"
        buffered += chunk
    head, _, rest = bytes(buffered).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    length = int(headers["Content-Length"])
    while len(rest) < length:
        chunk = reader.read(65536)
        assert chunk, "the server closed the connection mid-body"
        rest += chunk
    buffered[:] = rest[length:]
    return int(lines[0].split()[1]), headers["Content-Type"], rest[:length]


def test_pipelined_requests_are_answered_in_order(blocking_api: BlockingApi) -> None:
    server, _, _, _ = blocking_api
    paths = ["/status", "/healthz", "/status?format=yaml", "/nope", "/status", "/openapi.json"]
    wire = "".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n" for p in paths).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(wire)  # all at once: waitress parses them from one read
        reader, buffered = socket.SocketIO(sock, "rb"), bytearray()
        answers = [_read_response(reader, buffered) for _ in paths]

    codes = [code for code, _, _ in answers]
    assert codes == [200, 200, 200, 404, 200, 200]
    assert json.loads(answers[0][2])["deployment_statuses"][0]["name"] == "MangoStand"
    assert "status" in json.loads(answers[1][2])  # /healthz's own body
    assert answers[2][1].startswith("application/yaml") and b"MangoStand" in answers[2][2]
    assert answers[4][2] == answers[0][2]
    assert json.loads(answers[5][2])["openapi"].startswith("3.")


def test_a_client_that_pipelines_without_reading_never_stalls_the_loop(
    blocking_api: BlockingApi,
) -> None:
    # 80 answers of ~300 KB queue 24 MB, past waitress's 16 MiB mark where a writer waits for
    # the loop to send: served in the loop itself, that wait would never end, for everyone.
    server, _, _, state = blocking_api
    app = state.snapshot.applications[0]
    big = dataclasses.replace(app, message="m" * 300_000)
    state.snapshot = dataclasses.replace(state.snapshot, applications=(big,))
    url = f"http://127.0.0.1:{server.port}"
    wire = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n" * 80
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(wire)
        for _ in range(50):  # meanwhile, another client is answered
            assert requests.get(url + "/status", timeout=5).status_code == 200
        reader, buffered = socket.SocketIO(sock, "rb"), bytearray()
        answers = [_read_response(reader, buffered) for _ in range(80)]
    assert {(code, len(body)) for code, _, body in answers} == {(200, len(answers[0][2]))}
    assert len(answers[0][2]) > 300_000
