"""Commit statuses on the git host: whether a push is live, on the commit (and the pull request)
itself. Supported: GitHub (github.com and GitHub Enterprise) and Gitea / Forgejo, which share the
endpoint `POST /repos/{owner}/{repo}/statuses/{sha}` with {state, description, context,
target_url}. GitLab's API is another one and is not supported.

What each commit's status is, is derived from the snapshot after every pass (`wanted`), never kept
apart: pending when the branch points at it (preparing, deploying, or waiting behind a pin),
success once every application is RUNNING at it, failure with the first error when it is refused
(or its deploy failed). Only a change is sent (the same state and description are never posted
twice for a commit), by one worker thread from a bounded queue, in order, retried with the loop's
backoff when the host is down or busy; the pass never waits for the network. The token is sent
only in the Authorization header and scrubbed from everything logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from reconciler.backoff import backoff_s
from reconciler.model import ApplicationStatus, Snapshot
from reconciler.settings import CommitStatusSettings

log = logging.getLogger(__name__)

SUPPORTED = "GitHub (github.com, GitHub Enterprise) and Gitea/Forgejo"
MAX_DESCRIPTION = 140  # GitHub's limit
QUEUE = 256  # statuses waiting to be sent; the oldest are dropped beyond
REMEMBERED = 1000  # commits whose last status is remembered (for de-duplication)
ATTEMPTS = 8  # per status, over ~2 minutes of backoff
TIMEOUT_S = 10.0
_SSH = re.compile(r"\A(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*)\Z")  # git@host:o/r.git


@dataclass(frozen=True)
class Post:
    sha: str
    state: str  # pending, success, failure, error
    description: str


def api_url_for(repo_url: str) -> str | None:
    """The repository's API root for a clone URL: api.github.com for github.com, HOST/api/v1
    (Gitea, Forgejo) for any other host; None for a local path or file:// URL."""
    host, path = _host_and_path(repo_url)
    if host is None or path is None:
        return None
    parts = path.strip("/").removesuffix(".git").split("/")
    if len(parts) < 2 or not all(parts[-2:]):
        return None
    owner, repo = parts[-2], parts[-1]
    if host.lower() in ("github.com", "www.github.com"):
        return f"https://api.github.com/repos/{owner}/{repo}"
    prefix = "/".join(parts[:-2])  # a Gitea served under a sub-path
    base = f"https://{host}" + (f"/{prefix}" if prefix else "")
    return f"{base}/api/v1/repos/{owner}/{repo}"


def _host_and_path(url: str) -> tuple[str | None, str | None]:
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ssh", "git+ssh", "ssh+git", "git"):
            return None, None
        host = parts.hostname
        if host and parts.scheme == "http" and parts.port:
            host = f"{host}:{parts.port}"
        return host, parts.path
    match = _SSH.match(url)
    return (match["host"], match["path"]) if match else (None, None)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "\u2026"


def _live(snap: Snapshot) -> tuple[str, str] | None:
    """The applied commit's state from its applications (None: nothing to say, e.g. UNHEALTHY
    after it ran: a commit that went live is not marked failed by a replica crash)."""
    statuses = [a.status for a in snap.applications]
    if statuses and all(s is ApplicationStatus.RUNNING for s in statuses):
        return "success", "Running"
    deploy_failed = (a for a in snap.applications if a.status is ApplicationStatus.DEPLOY_FAILED)
    failed = next(deploy_failed, None)
    if failed is not None:
        first = next((line for line in failed.message.splitlines() if line.strip()), "")
        return "failure", _clip(f"Deploy failed: {first}" if first else "Deploy failed")
    if any(s is ApplicationStatus.DEPLOYING for s in statuses):
        return "pending", "Deploying"
    return None


def wanted(snap: Snapshot) -> dict[str, tuple[str, str]]:
    """Each commit the snapshot says something about -> (state, description)."""
    c = snap.commits
    out: dict[str, tuple[str, str]] = {}
    refused = bool(c.errors) and c.attempted == c.latest and c.outcome in ("invalid", "error")
    if c.latest is not None:
        if refused:
            out[c.latest] = ("failure", _clip(f"Refused: {c.errors[0]}"))
        elif c.behind_pin and c.pinned is not None:
            out[c.latest] = ("pending", f"Waiting behind the pin at {c.pinned[:12]}")
        elif c.preparing == c.latest:
            out[c.latest] = ("pending", "Preparing")
        elif c.latest != c.applied:
            out[c.latest] = ("pending", "Seen; not deployed yet")
    if c.preparing is not None and c.preparing not in out:
        out[c.preparing] = ("pending", "Preparing")
    # What the branch says is laid over the applications while it is refused or prepared: the
    # applied commit's own state shows only otherwise.
    if c.applied is not None and c.applied not in out and not refused and c.preparing is None:
        live = _live(snap)
        if live is not None:
            out[c.applied] = live
    return out


class CommitStatusReporter:
    """Posts commit statuses from a worker thread; `observe(snapshot)` after each pass."""

    def __init__(
        self,
        settings: CommitStatusSettings,
        *,
        session: requests.Session | None = None,
        queue: int = QUEUE,
        attempts: int = ATTEMPTS,
        base_backoff_s: float = 1.0,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self._settings = settings
        self._session = session or requests.Session()
        self._attempts, self._base, self._timeout = attempts, base_backoff_s, timeout_s
        self._lock = threading.Condition()
        self._queue: deque[Post] = deque()
        self._max = queue
        self._last: OrderedDict[str, tuple[str, str]] = OrderedDict()  # sha -> last queued
        self._busy = False  # a status is being sent (or waits for its retry)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="commit-status", daemon=True)
        self.sent = 0  # statuses the host accepted (tests and logs read it)

    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything queued was sent (or given up); False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while (self._queue or self._busy) and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
            return not (self._queue or self._busy)

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def observe(self, snap: Snapshot) -> None:
        """Queue what changed since the last snapshot. Never blocks on the network."""
        for sha, state in wanted(snap).items():
            with self._lock:
                if self._last.get(sha) == state:
                    continue
                self._last[sha] = state
                self._last.move_to_end(sha)
                while len(self._last) > REMEMBERED:
                    self._last.popitem(last=False)
                if len(self._queue) >= self._max:
                    dropped = self._queue.popleft()
                    log.warning("commit status queue full; dropped one for %s", dropped.sha[:12])
                self._queue.append(Post(sha, *state))
                self._lock.notify()

    # --- the worker ---------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._queue and not self._stop.is_set():
                    self._lock.wait()
                if self._stop.is_set():
                    return
                post = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(post)
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def _deliver(self, post: Post) -> None:
        for attempt in range(1, self._attempts + 1):
            retry, why = self._send(post)
            if not retry:
                return
            if attempt == self._attempts:
                break
            wait = backoff_s(self._base, attempt)
            log.info("commit status for %s: %s; retrying in %gs", post.sha[:12], why, wait)
            if self._stop.wait(wait):
                return
        log.warning("commit status %s for %s not posted: %s", post.state, post.sha[:12], why)

    def _send(self, post: Post) -> tuple[bool, str]:
        """(retry?, why it failed). Network trouble, 429 and 5xx are retried; other refusals
        (a wrong token, an unknown repository or commit) are reported once."""
        s = self._settings
        body = {"state": post.state, "description": post.description, "context": s.context}
        if s.target_url:
            body["target_url"] = s.target_url
        headers = {
            "Authorization": f"token {s.token}",
            "Accept": "application/vnd.github+json",
            "User-Agent": "serve-reconciler",
        }
        url = f"{s.api_url}/statuses/{post.sha}"
        try:
            response = self._session.post(url, json=body, headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            return True, self._scrub(f"{type(exc).__name__}: {exc}")
        if response.status_code in (200, 201):
            self.sent += 1
            log.info("commit %s: %s (%s)", post.sha[:12], post.state, post.description)
            return False, ""
        why = self._scrub(f"{response.status_code} {_said(response)}")
        if response.status_code == 429 or response.status_code >= 500:
            return True, why
        log.warning("commit status for %s refused by %s: %s", post.sha[:12], s.api_url, why)
        return False, why

    def _scrub(self, text: str) -> str:
        token = self._settings.token
        return text.replace(token, "***") if token else text


def _said(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:200] if message else ""
