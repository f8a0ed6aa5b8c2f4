"""An open-loop load client for the load tests: request i is due at t0 + i/rate whatever happened
before, and its latency counts from that due time (no coordinated omission), so a server that
falls behind shows in the figures.

The client is `tests/tools/rateload.c` (wrk2's method, one epoll thread), built with the host's C
compiler on first use, and run under SCHED_FIFO where we may (`chrt -f`): on 2 cores a rollout
keeps the run queue long, and a client that is itself sent late would be measuring its own
starvation, not the server (a client in Python, in the test's process, was late by up to 0.9 s).
Without a compiler it falls back to a threaded Python client, and says so in `client`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).parent / "tools" / "rateload.c"


@dataclass
class RateResult:
    client: str  # "c (SCHED_FIFO)", "c" or "python"
    sent: int
    errors: int
    marked: int  # answers holding the marker
    late_max_ms: float  # how late the client itself sent, at worst
    ms: dict[str, float] = field(default_factory=dict)  # p50, p90, p99, p999, max

    def summary(self) -> str:
        pct = ", ".join(f"{k} {v:.1f} ms" for k, v in self.ms.items())
        return (
            f"{self.sent} requests, {self.errors} errors, {pct}; client {self.client}, "
            f"late at most {self.late_max_ms:.1f} ms; {self.marked} marked"
        )


def build_rateload() -> Path | None:
    """The compiled client (cached by source hash), or None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    binary = Path(tempfile.gettempdir()) / f"serve-reconciler-rateload-{digest}"
    if not binary.exists():
        partial = binary.with_suffix(f".{os.getpid()}")
        subprocess.run([cc, "-O2", "-o", str(partial), str(SOURCE)], check=True, timeout=120)
        partial.replace(binary)
    return binary


def _fifo_prefix() -> list[str]:
    chrt = shutil.which("chrt")
    if chrt is None:
        return []
    probe = subprocess.run([chrt, "-f", "50", "true"], capture_output=True, check=False)
    return [chrt, "-f", "50"] if probe.returncode == 0 else []


def hold_rate(url: str, *, rate: float, seconds: float, marker: str = "") -> RateResult:
    binary = build_rateload()
    if binary is None:
        return _python_hold_rate(url, rate=rate, seconds=seconds, marker=marker.encode())
    parts = urllib.parse.urlsplit(url)
    prefix = _fifo_prefix()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    args = [str(binary), parts.hostname or "127.0.0.1", str(parts.port), target]
    args += [str(rate), str(seconds), *([marker] if marker else [])]
    done = subprocess.run(
        [*prefix, *args], capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0 and not done.stdout.strip():
        raise RuntimeError(f"rateload failed ({done.returncode}): {done.stderr}")
    data = json.loads(done.stdout)
    return RateResult(
        client="c (SCHED_FIFO)" if prefix else "c",
        sent=int(data["sent"]),
        errors=int(data["errors"]),
        marked=int(data.get("marked", 0)),
        late_max_ms=float(data.get("late_max_ms", 0.0)),
        ms={k: float(data.get(f"{k}_ms", 0.0)) for k in ("p50", "p90", "p99", "p999", "max")},
    )


def _python_hold_rate(
    url: str, *, rate: float, seconds: float, marker: bytes, threads: int = 8
) -> RateResult:
    parts = urllib.parse.urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    total = int(rate * seconds)
    t0 = time.monotonic() + 0.2
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"errors": 0, "marked": 0}
    late_max = [0.0]

    def worker(k: int) -> None:
        conn: http.client.HTTPConnection | None = None
        pause = threading.Event()
        for i in range(k, total, threads):
            due = t0 + i / rate
            pause.wait(max(0.0, due - time.monotonic()))
            late = time.monotonic() - due
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
                conn.request("GET", target)
                response = conn.getresponse()
                body = response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok, body, conn = False, b"", None
            took = time.monotonic() - due
            with lock:
                late_max[0] = max(late_max[0], late)
                if ok:
                    latencies.append(took)
                    counts["marked"] += bool(marker) and marker in body
                else:
                    counts["errors"] += 1
        if conn is not None:
            conn.close()

    workers = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + 30)
    ordered = sorted(latencies) or [0.0]

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * (len(ordered) - 1)))] * 1000

    return RateResult(
        client="python",
        sent=total,
        errors=counts["errors"],
        marked=counts["marked"],
        late_max_ms=late_max[0] * 1000,
        ms={"p50": pct(50), "p90": pct(90), "p99": pct(99), "p999": pct(99.9), "max": pct(100)},
    )
