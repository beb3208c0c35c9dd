"""A count of work in flight with an "idle" event: the one tracker behind the detector
service's pending requests, the bots' admitted checks and Discord's answers in progress,
whose shutdowns all wait for "nothing in flight". Light: no third-party imports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class IdleTracker:
    """``with tracker.track():`` around each unit of work; ``await tracker.wait_idle()``
    returns once none is in flight. Create inside a running loop's thread."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        return self._count

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Until nothing is in flight, including work that had been scheduled on the loop but
        had not started yet (it runs before a zero-delay sleep returns)."""
        while True:
            await self._idle.wait()
            await asyncio.sleep(0)
            if self._count == 0:
                return
