"""The exit watcher's rules, against a behavioural model of the engine's event stream: each
replica death is settled (inspected) and then reported, a drained replica's exit is not, a
broken stream is reopened and the reopening reported (deaths may have been missed), and close()
ends the thread even while it waits on the stream."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from reconciler.runtime.exits import ExitWatcher
from tests.support import wait_for


class Stream:
    """An event stream fed by the test; close() ends the iteration, as the SDK's does."""

    def __init__(self) -> None:
        self.items: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (item := self.items.get()) is not None:
            yield item

    def close(self) -> None:
        self.closed = True
        self.items.put(None)

    def die(self, cid: str, name: str) -> None:
        self.items.put({"id": cid, "Actor": {"ID": cid, "Attributes": {"name": name}}})


class Engine:
    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.filters: list[dict[str, Any]] = []
        self.settled: list[str] = []
        self.lock = threading.Lock()

    def events(self, filters: dict[str, Any]) -> Stream:
        with self.lock:
            self.filters.append(filters)
            self.streams.append(Stream())
            return self.streams[-1]

    def settle(self, cid: str) -> None:
        with self.lock:
            self.settled.append(cid)


def test_deaths_are_settled_then_reported_and_drained_exits_are_not() -> None:
    engine, calls = Engine(), []
    watcher = ExitWatcher(engine.events, ["owner=x"], lambda: calls.append(1), engine.settle)
    watcher.start()
    try:
        wait_for(lambda: engine.streams, timeout=5, interval=0.01, what="the stream opened")
        assert engine.filters[0] == {"type": "container", "event": "die", "label": ["owner=x"]}
        stream = engine.streams[0]
        stream.die("c1", "serve-x-default-Greeter-0")
        stream.die("c2", "serve-x-default-Greeter-1--drain-1")  # drained by us: no pass
        stream.die("c3", "serve-x-default-Greeter-2")
        wait_for(lambda: len(calls) == 2, timeout=5, interval=0.01, what="two reports")
        assert engine.settled == ["c1", "c3"]
    finally:
        watcher.close()
    assert engine.streams[0].closed


def test_a_broken_stream_is_reopened_and_the_reopening_reported() -> None:
    engine, calls = Engine(), []
    watcher = ExitWatcher(engine.events, ["owner=x"], lambda: calls.append(1), engine.settle)
    watcher.start()
    try:
        wait_for(lambda: engine.streams, timeout=5, interval=0.01, what="the stream opened")
        engine.streams[0].close()  # the engine restarted
        wait_for(lambda: len(engine.streams) == 2, timeout=5, interval=0.05, what="reopened")
        wait_for(lambda: calls == [1], timeout=5, interval=0.01, what="a catch-up pass")
    finally:
        watcher.close()
