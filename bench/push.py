"""Section `push`: from `git push` to every replica answering with the new user_config.

Two daemons, one after the other: one polling every second, one with a 1-hour poll interval that
only a signed POST /webhook (GitHub style, sent right after the push) can wake. The clock starts
before `git push` and stops when every replica's `info()` returns the new greeting.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.core import Cleanup, median, wait_until
from bench.daemon import all_answer, post_webhook, running_daemon
from bench.workload import Workload
from tests.support import free_port, git


def _push_times(cleanup: Cleanup, repeats: int, replicas: int, webhook: bool) -> list[float]:
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        workload = Workload(replicas=replicas, port=free_port())
        poll = 3600.0 if webhook else 1.0
        with running_daemon(
            cleanup, Path(tmp), workload, section="push", poll_s=poll, webhook=webhook
        ) as (daemon, remote, owner):
            for i in range(repeats):
                old, new = ("hello" if i == 0 else f"push{i}"), f"push{i + 1}"
                remote.edit("serve_config.yaml", f"greeting: {old}", f"greeting: {new}")
                remote.commit_all(f"greeting {new}", push=False)
                t0 = time.monotonic()
                git(remote.work, "push", "-q", "origin", "HEAD:main")
                if webhook:
                    post_webhook(daemon)
                wait_until(
                    lambda new=new: all_answer(cleanup, owner, replicas, "greeting", new),  # type: ignore[misc]
                    timeout=60, interval=0.02, what=f"every replica says {new}",
                )  # fmt: skip
                times.append(time.monotonic() - t0)
    return times


def run(cleanup: Cleanup, repeats: int, replicas: int = 10) -> dict[str, Any]:
    polled = _push_times(cleanup, repeats, replicas, webhook=False)
    hooked = _push_times(cleanup, repeats, replicas, webhook=True)
    return {
        "replicas": replicas,
        "poll_1s_s": median(polled),
        "webhook_s": median(hooked),
        "poll_1s_runs_s": [round(t, 3) for t in polled],
        "webhook_runs_s": [round(t, 3) for t in hooked],
    }
