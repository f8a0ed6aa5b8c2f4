"""A plain GET /status is served by waitress's loop thread itself (api/server.py), not handed to
a worker: it is answered while every worker is busy, and responses on a connection stay in the
order of its requests when inline and worker requests are pipelined on it."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import socket
import threading
from collections.abc import Iterator

import pytest
import requests
from api_support import FakeState, app_for, single_snapshot

from reconciler.api import ApiServer
from reconciler.model import Snapshot


@dataclasses.dataclass
class Live:
    server: ApiServer
    state: FakeState
    entered: threading.Event  # the worker is inside GET /hold
    release: threading.Event  # lets GET /hold return
    snapshot_read: threading.Event  # the app has asked for the snapshot
    gate: threading.Event  # cleared: asking for the snapshot waits (holds the loop thread)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
def live() -> Iterator[Live]:
    """The real app with one worker thread and an extra route that holds it until released."""
    state = FakeState()
    state.snapshot = single_snapshot()
    snapshot_read, gate = threading.Event(), threading.Event()
    gate.set()

    def snapshot() -> Snapshot:
        snapshot_read.set()
        gate.wait(30)
        return state.snapshot

    app = app_for(state, snapshot=snapshot)
    entered, release = threading.Event(), threading.Event()

    def hold() -> str:
        entered.set()
        release.wait(30)
        return "released"

    app.add_url_rule("/hold", view_func=hold)
    server = ApiServer(app, port=0, threads=1)
    server.start()
    yield Live(server, state, entered, release, snapshot_read, gate)
    release.set()
    gate.set()
    server.stop()


def test_plain_status_is_answered_while_every_worker_is_busy(live: Live) -> None:
    url, entered, release = live.url, live.entered, live.release
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


def test_pipelined_requests_are_answered_in_order(live: Live) -> None:
    server = live.server
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


def test_a_client_that_pipelines_without_reading_never_stalls_the_loop(live: Live) -> None:
    # 80 answers of ~300 KB queue 24 MB, past waitress's 16 MiB mark where a writer waits for
    # the loop to send: served in the loop itself, that wait would never end, for everyone.
    server, state = live.server, live.state
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


def test_many_pipelining_clients_never_block_the_loop_on_its_wakeup_pipe(live: Live) -> None:
    # Waitress wakes its loop through a pipe that only the loop reads, 8 KiB a poll. Requests
    # served in the loop must not write to it: 30 clients whose 150 pipelined requests each
    # arrive while the loop is held would write 4,500 bytes at once, and the pipe is shrunk to
    # one page here. The loop would block writing to a pipe only it drains, for every client.
    fcntl.fcntl(live.server._server.trigger.trigger, fcntl.F_SETPIPE_SZ, 4096)
    socks = [
        socket.create_connection(("127.0.0.1", live.server.port), timeout=10) for _ in range(31)
    ]
    one = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n"
    readers = [(socket.SocketIO(sock, "rb"), bytearray()) for sock in socks]
    try:
        for sock, (reader, buffered) in zip(socks, readers, strict=True):  # all accepted
            sock.sendall(one)
            assert _read_response(reader, buffered)[0] == 200
        live.gate.clear()
        live.snapshot_read.clear()
        socks[30].sendall(one)
        assert live.snapshot_read.wait(10), "the loop never asked for the snapshot"
        for sock in socks[:30]:  # the loop thread is held: these all wait for one poll
            sock.sendall(one * 150)
        live.gate.set()
        for reader, buffered in readers[:30]:
            codes = {_read_response(reader, buffered)[0] for _ in range(150)}
            assert codes == {200}
        assert _read_response(*readers[30])[0] == 200
    finally:
        for sock in socks:
            sock.close()
    assert requests.get(live.url + "/healthz", timeout=5).status_code == 200
