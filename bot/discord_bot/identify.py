"""IDENTIFY pacing across shard processes. Discord lets a bot start one gateway session per
rate-limit bucket (``shard_id % max_concurrency``) every 5 seconds, counted over all of the
bot's processes; discord.py paces only the shards of its own process (it sleeps 5 s before each
IDENTIFY but the first). With ``REDIS_URL`` a process instead takes the bucket's Redis key with
``SET NX PX`` before each IDENTIFY: whoever sets it may identify, and the key expires one
interval after it was taken, so no two IDENTIFYs of a bucket are closer than that, whichever
processes send them. The key is never deleted early: expiry *is* the spacing.

When Redis fails or the wait runs past its deadline, the process logs a warning and falls back
to discord.py's own pacing (a 5 s sleep): a rare too-early IDENTIFY costs an invalid session
and a retry, never a stuck shard.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import discord

from bot.redis_client import SharedRedis

_log = logging.getLogger(__name__)


class IdentifyLock:
    """Turns to IDENTIFY per bucket, shared through Redis by every process of the bot."""

    def __init__(
        self, redis: SharedRedis, *, interval_s: float = 5.0, max_wait_s: float = 150.0
    ) -> None:
        self.redis = redis
        self.interval_ms = max(1, round(interval_s * 1000))
        self.max_wait_s = max_wait_s
        self._holder = f"{os.getpid()}@{time.time_ns()}"  # who took it, for an operator's eyes

    async def wait_turn(self, bucket: int) -> bool:
        """Wait until this process holds the bucket's key (True), or give up with a warning
        on a Redis error or past ``max_wait_s`` (False: pace in-process instead)."""
        from redis.exceptions import RedisError

        key = self.redis.key("discord", "identify", bucket)
        deadline = time.monotonic() + self.max_wait_s
        try:
            while not await self.redis.client.set(key, self._holder, nx=True, px=self.interval_ms):
                left = deadline - time.monotonic()
                if left <= 0:
                    _log.warning(
                        "waited %.0f s for the identify turn of bucket %d: identifying with "
                        "in-process pacing only", self.max_wait_s, bucket,
                    )  # fmt: skip
                    return False
                ttl_ms = await self.redis.client.pttl(key)  # -2: just expired, -1: no expiry
                await asyncio.sleep(min(left, max(ttl_ms, 10) / 1000))
        except (RedisError, OSError) as exc:
            _log.warning(
                "Redis failed while taking the identify turn (%s): pacing in-process only",
                type(exc).__name__,
            )
            return False
        return True


class PacedShardedClient(discord.AutoShardedClient):
    """An :class:`~discord.AutoShardedClient` whose IDENTIFYs wait for their bucket's turn in
    :class:`IdentifyLock` (discord.py's ``before_identify_hook``, called before every IDENTIFY,
    the first and every re-identify after a lost session, but not before a RESUME)."""

    def __init__(
        self, *args: Any, identify_lock: IdentifyLock, concurrency: int | None, **options: Any
    ) -> None:
        super().__init__(*args, **options)
        self._identify_lock = identify_lock
        self._concurrency = concurrency

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if shard_id is not None:
            bucket = shard_id % await self._max_concurrency()
            if await self._identify_lock.wait_turn(bucket):
                return
        await super().before_identify_hook(shard_id, initial=initial)

    async def _max_concurrency(self) -> int:
        """``session_start_limit.max_concurrency`` of ``GET /gateway/bot`` (asked once), unless
        ``DISCORD_IDENTIFY_CONCURRENCY`` says; 1 when Discord cannot be asked (one bucket:
        slower but never too fast)."""
        if self._concurrency is None:
            try:
                limits = await self.fetch_session_start_limits()
            except (discord.DiscordException, OSError) as exc:
                _log.warning("could not read max_concurrency from /gateway/bot (%s): using 1", exc)
                self._concurrency = 1
            else:
                self._concurrency = max(1, limits.max_concurrency)
                _log.info("identify concurrency %d (from /gateway/bot)", self._concurrency)
        return self._concurrency
