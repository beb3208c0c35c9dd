"""Per-sender rate limits shared by every replica, in Redis: the same sliding window as
:class:`~bot.core.ratelimit.SlidingWindowLimiter`, one budget per sender however many
replicas serve them.

Each sender has a sorted set of check times (score = time) that expires one window after its
last check. The check-and-charge is one Lua script, so two replicas charging the same sender
at once cannot both take the last slot. Times come from the replicas' clocks (NTP keeps them
within far less than the window), which lets tests drive a fake clock.

Redis failing at runtime (down, timing out) fails *open*: the check goes ahead and a warning is
logged. A Redis blip must not silence the bot; the cost is that limits are not enforced while
Redis is away.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from redis.exceptions import RedisError

from bot.core.errors import RateLimited
from bot.redis_client import SharedRedis

_log = logging.getLogger(__name__)

# KEYS[1]: the sender's sorted set. ARGV: now, window (s), limit, cost, a unique member prefix.
# Returns nil when charged, else the seconds until the charge would fit (as a string: Lua
# numbers become integers in replies).
_ACQUIRE = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local limit, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n + cost > limit then
  if cost > limit then return tostring(window) end
  local at = n + cost - limit - 1
  local oldest = redis.call('ZRANGE', KEYS[1], at, at, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
for i = 1, cost do redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. i) end
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return false
"""


class RedisWindowLimiter:
    def __init__(
        self,
        redis: SharedRedis,
        limit: int,
        window_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 0 or window_s <= 0:
            raise ValueError("limit >= 0 and window_s > 0 required")
        self._redis = redis
        self._limit = limit
        self.window_s = window_s
        self._clock = clock
        self._acquire = redis.client.register_script(_ACQUIRE)

    @property
    def limit(self) -> int:
        return self._limit

    def _key(self, key: str) -> str:
        return self._redis.key("ratelimit", key)

    async def acquire(self, key: str, cost: int = 1) -> None:
        if self._limit == 0 or cost <= 0:
            return
        now, member = repr(self._clock()), uuid.uuid4().hex
        args: list[str | int] = [now, repr(self.window_s), self._limit, cost, member]
        try:
            wait = await self._acquire(keys=[self._key(key)], args=args)
        except (RedisError, OSError) as exc:
            _log.warning("rate limit not enforced: Redis failed (%s)", type(exc).__name__)
            return
        if wait is not None:
            raise RateLimited(self._limit, max(float(wait), 0.0))

    async def refund(self, key: str, cost: int = 1) -> None:
        if self._limit == 0 or cost <= 0:
            return
        try:  # the most recent checks, as the in-memory limiter gives back
            await self._redis.client.zpopmax(self._key(key), cost)
        except (RedisError, OSError) as exc:
            _log.warning("rate limit refund lost: Redis failed (%s)", type(exc).__name__)
