"""Per-sender rate limits: at most ``limit`` checks in any sliding window of ``window_s``.

:class:`RateLimiter` is what the core needs; :class:`SlidingWindowLimiter` keeps the windows in
memory, per process (several replicas share one budget through
:class:`bot.core.redis_ratelimit.RedisWindowLimiter` instead). The interface is async for the
shared store's sake. Memory stays bounded: keys whose last check left the window are dropped,
and the number of tracked keys is capped (the stalest keys are forgotten first, which can only
ever favour the sender).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

from bot.core.errors import RateLimited


class RateLimiter(Protocol):
    """At most ``limit`` checks per sender in any sliding window (0: no limit)."""

    @property
    def limit(self) -> int: ...

    async def acquire(self, key: str, cost: int = 1) -> None:
        """Charge ``cost`` checks to ``key`` now, or raise :class:`RateLimited` charging
        nothing."""

    async def refund(self, key: str, cost: int = 1) -> None:
        """Give back the most recent ``cost`` checks of ``key``."""


class SlidingWindowLimiter:
    def __init__(
        self,
        limit: int,
        window_s: float = 60.0,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0 or window_s <= 0 or max_keys < 1:
            raise ValueError("limit >= 0, window_s > 0 and max_keys >= 1 required")
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        # key -> times of the checks still inside the window, oldest first; the dict itself is
        # kept in least-recently-used order.
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def __len__(self) -> int:
        return len(self._hits)

    def _window(self, key: str, now: float) -> deque[float]:
        hits = self._hits.get(key)
        if hits is None:
            hits = deque()
            self._hits[key] = hits
        else:
            self._hits.move_to_end(key)
        horizon = now - self.window_s
        while hits and hits[0] <= horizon:
            hits.popleft()
        return hits

    async def acquire(self, key: str, cost: int = 1) -> None:
        """Record ``cost`` checks for ``key`` now, or raise :class:`RateLimited` (recording
        nothing) when they do not fit. ``cost`` above the limit can never fit."""
        if not self.enabled or cost <= 0:
            return
        now = self._clock()
        hits = self._window(key, now)
        if len(hits) + cost > self.limit:
            if cost > self.limit:
                retry = self.window_s
            else:
                # The (len + cost - limit)-th oldest hit must leave the window first.
                retry = hits[len(hits) + cost - self.limit - 1] + self.window_s - now
            if not hits:
                del self._hits[key]
            raise RateLimited(self.limit, max(retry, 0.0))
        hits.extend([now] * cost)
        self._evict(now)

    async def refund(self, key: str, cost: int = 1) -> None:
        """Give back the most recent ``cost`` checks (the request was refused for our reasons,
        such as a busy detector, not the sender's)."""
        hits = self._hits.get(key)
        if hits is None:
            return
        for _ in range(min(cost, len(hits))):
            hits.pop()
        if not hits:
            del self._hits[key]

    def _evict(self, now: float) -> None:
        horizon = now - self.window_s
        # Oldest-used keys first: stop at the first one still inside the window.
        while self._hits:
            key, hits = next(iter(self._hits.items()))
            if len(self._hits) <= self.max_keys and hits and hits[-1] > horizon:
                break
            del self._hits[key]
