"""Bounded admission for checks: ``limit`` run at once, ``backlog`` more may wait for a slot,
and anyone beyond that is told "busy" at once instead of queueing without bound.

This bounds the memory held by downloads (each up to the image size limit) and the work queued
in front of the detector, whatever the number of chats and platforms feeding it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from detector.errors import DetectorBusy, DetectorClosed
from detector.idle import IdleTracker


class Admission:
    def __init__(self, limit: int, backlog: int) -> None:
        if limit < 1 or backlog < 0:
            raise ValueError("limit >= 1 and backlog >= 0 required")
        self.limit = limit
        self.backlog = backlog
        self._slots = asyncio.Semaphore(limit)
        self._admitted = IdleTracker()  # running + waiting
        self._running = 0
        self._closed = False

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._admitted.count - self._running

    def close(self) -> None:
        """Refuse new checks from now on (with ``DetectorClosed``); admitted ones carry on."""
        self._closed = True

    async def wait_idle(self) -> None:
        """Until every admitted check has finished."""
        await self._admitted.wait_idle()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one running slot for the body. Raises ``DetectorBusy`` at once when the slots
        and the backlog are full, ``DetectorClosed`` after :meth:`close`."""
        if self._closed:
            raise DetectorClosed("not accepting checks: shutting down")
        if self._admitted.count >= self.limit + self.backlog:
            raise DetectorBusy(f"{self._running} checks running, {self.waiting} waiting")
        with self._admitted.track():
            async with self._slots:
                self._running += 1
                try:
                    yield
                finally:
                    self._running -= 1
