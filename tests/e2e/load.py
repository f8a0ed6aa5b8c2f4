"""A steady HTTP load for zero-drop tests: a few client threads at a fixed total rate, each
request on a new connection (or, with `keep_alive`, each thread on one kept-alive connection,
opened again only when the server closes it), every outcome counted."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests


@dataclass
class SteadyLoad:
    url: str
    body: Any
    rate: float = 25.0
    threads: int = 2
    timeout: float = 10.0
    keep_alive: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> SteadyLoad:
        for n in range(self.threads):
            t = threading.Thread(target=self._run, args=(n,), daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=self.timeout + 5)

    @property
    def sent(self) -> int:
        return sum(self.outcomes.values())

    def _run(self, n: int) -> None:
        period = self.threads / self.rate
        next_at = time.monotonic() + n * period / self.threads
        session = requests.Session() if self.keep_alive else None
        while not self._stop.is_set():
            self._one(session)
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _one(self, session: requests.Session | None) -> None:
        try:
            if session is None:
                response = requests.post(
                    self.url, json=self.body, timeout=self.timeout, headers={"Connection": "close"}
                )
            else:
                response = session.post(self.url, json=self.body, timeout=self.timeout)
            outcome = str(response.status_code)
            text = response.text.strip()
        except requests.RequestException as exc:
            outcome, text = type(exc).__name__, str(exc)
        with self._lock:
            self.outcomes[outcome] += 1
            if outcome == "200":
                self.answers[text] += 1
            else:
                self.failures.append(f"{outcome}: {text[:200]}")
