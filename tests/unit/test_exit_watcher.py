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
    engine, calls = Engine(), []  # each call records what had been settled by then
    watcher = ExitWatcher(
        engine.events, ["owner=x"], lambda: calls.append(list(engine.settled)), engine.settle
    )
    watcher.start()
    try:
        wait_for(lambda: engine.streams, timeout=5, interval=0.01, what="the stream opened")
        assert engine.filters[0] == {"type": "container", "event": "die", "label": ["owner=x"]}
        stream = engine.streams[0]
        stream.die("c1", "serve-x-default-Greeter-0")
        stream.die("c2", "serve-x-default-Greeter-1--drain-1")  # drained by us: no pass
        stream.die("c3", "serve-x-default-Greeter-2")
        wait_for(lambda: len(calls) == 2, timeout=5, interval=0.01, what="two reports")
        assert calls == [["c1"], ["c1", "c3"]]  # settled before reported
    finally:
        watcher.close()
    assert engine.streams[0].closed
    assert not watcher._thread.is_alive()


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


def test_an_engine_not_up_yet_is_waited_for_and_its_coming_up_reported() -> None:
    engine, calls, attempts = Engine(), [], []

    def events(filters: dict[str, Any]) -> Stream:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("no engine yet")
        return engine.events(filters)

    watcher = ExitWatcher(events, ["owner=x"], lambda: calls.append(1))
    watcher.start()
    try:  # retried after 1 s and 2 s; once open, a pass for what happened meanwhile
        wait_for(lambda: calls == [1], timeout=10, interval=0.05, what="the catch-up report")
        assert len(attempts) == 3
    finally:
        watcher.close()


class Refusing:
    """What the SDK returns for an error answer: the error comes out of the first next()."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        raise RuntimeError("403 Client Error: Forbidden (/events)")

    def close(self) -> None:
        pass


def test_an_engine_refusing_events_is_asked_with_backoff_and_triggers_no_pass(
    caplog: Any,
) -> None:
    calls, opens = [], []

    def events(filters: dict[str, Any]) -> Refusing:
        opens.append(1)
        return Refusing()

    watcher = ExitWatcher(events, ["owner=x"], lambda: calls.append(1))
    with caplog.at_level("WARNING", logger="reconciler.runtime.exits"):
        watcher.start()
        try:
            wait_for(lambda: len(opens) >= 3, timeout=10, interval=0.05, what="3 attempts")
        finally:
            watcher.close()
    assert len(opens) <= 4  # after 1 s, 2 s, 4 s: not once a second
    assert calls == []
    warnings = [r for r in caplog.records if "cannot follow the engine's events" in r.message]
    assert len(warnings) == 1 and "403" in warnings[0].message
