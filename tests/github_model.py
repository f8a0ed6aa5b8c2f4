"""A behavioural model of the GitHub commit-status API at one seam (a real HTTP server on
127.0.0.1): `POST /repos/{owner}/{repo}/statuses/{sha}` checks the token and the body the way
GitHub does (state one of error/failure/pending/success, description at most 140 characters, a
40-hex sha; 401 without a valid token, 422 otherwise) and stores the status; `GET .../commits/
{sha}/statuses` lists them newest first, and `GET .../commits/{sha}/status` is the combined
status (the latest per context). `fail_next` makes the next requests answer 502, as a host in
trouble does. Gitea and Forgejo answer the same shape under /api/v1.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATES = ("error", "failure", "pending", "success")
_POST = re.compile(
    r"\A(?P<prefix>(?:/api/v1|/api/v3)?)/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/statuses/(?P<sha>[^/]+)\Z"
)
_LIST = re.compile(
    r"\A(?:/api/v1|/api/v3)?/repos/[^/]+/[^/]+/commits/(?P<sha>[^/]+)/(?P<what>statuses|status)\Z"
)
_SHA = re.compile(r"\A[0-9a-f]{40}\Z")


@dataclass
class GitHubModel:
    token: str
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sha -> oldest first
    requests: list[tuple[str, str, dict[str, str]]] = field(
        default_factory=list
    )  # method, path, headers
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/repos/fruit/stand"

    def states(self, sha: str) -> list[str]:
        with self.lock:
            return [s["state"] for s in self.statuses.get(sha, [])]

    def descriptions(self, sha: str) -> list[str]:
        with self.lock:
            return [s["description"] for s in self.statuses.get(sha, [])]

    def post(self, sha: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        auth = headers.get("authorization", "")
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            return 401, {"message": "Bad credentials"}
        if not _SHA.match(sha):
            return 422, {"message": "No commit found for SHA: " + sha}
        if not isinstance(body, dict) or body.get("state") not in STATES:
            return 422, {"message": "Validation Failed", "errors": [{"field": "state"}]}
        description = body.get("description") or ""
        if not isinstance(description, str) or len(description) > 140:
            return 422, {"message": "Validation Failed", "errors": [{"field": "description"}]}
        with self.lock:
            stored = {
                "id": sum(len(v) for v in self.statuses.values()) + 1,
                "state": body["state"],
                "description": description,
                "context": body.get("context") or "default",
                "target_url": body.get("target_url"),
            }
            self.statuses.setdefault(sha, []).append(stored)
        return 201, stored

    def listing(self, sha: str, what: str) -> tuple[int, Any]:
        with self.lock:
            newest_first = list(reversed(self.statuses.get(sha, [])))
        if what == "statuses":
            return 200, newest_first
        latest: dict[str, dict[str, Any]] = {}
        for s in newest_first:
            latest.setdefault(s["context"], s)
        states = [s["state"] for s in latest.values()]
        state = "pending"
        if states and all(s == "success" for s in states):
            state = "success"
        elif any(s in ("failure", "error") for s in states):
            state = "failure"
        return 200, {"state": state, "sha": sha, "statuses": list(latest.values())}


def _handler(model: GitHubModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> bool:
            headers = {k.lower(): v for k, v in self.headers.items()}
            with model.lock:
                model.requests.append((self.command, self.path, headers))
                if model.fail_next > 0:
                    model.fail_next -= 1
                    failing = True
                else:
                    failing = False
            if failing:
                self._answer(502, {"message": "Server Error"})
            return not failing

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if not self._record():
                return
            match = _POST.match(self.path)
            if match is None:
                self._answer(404, {"message": "Not Found"})
                return
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                self._answer(400, {"message": "Problems parsing JSON"})
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._answer(*model.post(match["sha"], headers, body))

        def do_GET(self) -> None:
            if not self._record():
                return
            match = _LIST.match(self.path)
            if match is None:
                self._answer(404, {"message": "Not Found"})
                return
            self._answer(*model.listing(match["sha"], match["what"]))

    return Handler


@contextmanager
def github_model(token: str) -> Iterator[GitHubModel]:
    model = GitHubModel(token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(model))
    model.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="github-model", daemon=True)
    thread.start()
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()
