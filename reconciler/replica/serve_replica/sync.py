"""Serve's replica writer lock on the event loop: many requests (readers) or one reconfigure
(the writer); a waiting writer holds back new readers, so a reconfigure is not starved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ReadWriteLock:
    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    async def acquire_read(self) -> None:
        if self._writer or self._writers_waiting:
            async with self._cond:
                await self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
        self._readers += 1  # no await between the check and this: the loop is one thread

    async def release_read(self) -> None:
        self._readers -= 1
        if self._readers == 0 and self._writers_waiting:
            async with self._cond:
                self._cond.notify_all()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        async with self._cond:
            self._writers_waiting += 1
            try:
                await self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            async with self._cond:
                self._writer = False
                self._cond.notify_all()
