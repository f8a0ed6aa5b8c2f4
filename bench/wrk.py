"""Run Debian's `wrk` and read its `--latency` report."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors plus non-2xx/3xx answers

    def as_dict(self) -> dict[str, float]:
        return {
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "requests": self.requests,
            "errors": self.errors,
        }


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(g) for g in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(m.group(1))
    return WrkResult(rps, p50, p99, requests, errors)


def command(
    url: str, duration_s: float, connections: int = 8, threads: int = 2,
    headers: Sequence[str] = (),
) -> list[str]:  # fmt: skip
    extra = [arg for header in headers for arg in ("-H", header)]
    return ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
            "--latency", "--timeout", "5s", *extra, url]  # fmt: skip


def run(
    url: str, duration_s: float, connections: int = 8, headers: Sequence[str] = ()
) -> WrkResult:
    done = subprocess.run(
        command(url, duration_s, connections, headers=headers), capture_output=True, text=True,
        check=True, timeout=duration_s + 30,
    )  # fmt: skip
    return parse(done.stdout)


def run_many(urls: Sequence[str], duration_s: float, connections: int = 8) -> list[WrkResult]:
    """One wrk (-t1) per URL, all at once; their results in the same order."""
    procs = [
        subprocess.Popen(
            command(url, duration_s, connections, threads=1),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    return [finish(proc, timeout=duration_s + 60) for proc in procs]


def start(url: str, duration_s: float, connections: int = 8) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(url, duration_s, connections), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> WrkResult:
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited {proc.returncode}: {err[-500:]}")
    return parse(out)
