"""Telegram update de-duplication shared by several replicas, in Redis.

Behind a load balancer the same update can reach two replicas (Telegram retrying a webhook
POST it thinks failed, or the balancer retrying on another replica). Before handling one, a
replica *claims* its id: ``SET key <this replica> NX PX lease``. Exactly one claim succeeds;
when that replica's handlers have finished, the key becomes ``done`` for 24 hours (Telegram
keeps an update at most a day), so a later copy is dropped.

Crash semantics, as :mod:`bot.telegram_bot.handled` has them for one process: an update whose
handler died mid-check is answered after redelivery, not lost. A replica that finds the id
claimed by someone else (not yet ``done``) waits: ``done`` means drop it; the claim running
out (its holder died, its lease of a few minutes, longer than a check may take, passed) means
claim it and answer. A restarted single replica thus answers the update it died on, late.

Redis failing at runtime fails *open*: the update is handled and a warning logged. A Redis
blip must not silence the bot; the cost is a possible second answer to a redelivered update.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from redis.exceptions import RedisError

from bot.redis_client import SharedRedis
from bot.settings import Settings

_log = logging.getLogger(__name__)

DONE = b"done"
DONE_TTL_S = 24 * 3600
# Beyond the longest a check may take (download, analysis, an album's collecting), so a live
# holder's claim does not run out under it.
LEASE_MARGIN_S = 120.0


class RedisUpdateClaims:
    def __init__(
        self,
        redis: SharedRedis,
        *,
        namespace: str,
        lease_s: float,
        poll_s: float = 1.0,
    ) -> None:
        self._redis = redis
        self._namespace = namespace
        self._lease_ms = max(1, round(lease_s * 1000))
        self._poll_s = poll_s
        self._me = uuid.uuid4().hex  # this replica's run: a claim left by an earlier run expires
        self._stopping = asyncio.Event()

    @classmethod
    def for_bot(cls, redis: SharedRedis, settings: Settings) -> RedisUpdateClaims:
        """The claims of the bot ``TELEGRAM_TOKEN`` names (its id, the token's public part, keeps
        two bots on one Redis apart), with a lease of a few minutes (5 by default)."""
        assert settings.telegram_token is not None
        bot_id = settings.telegram_token.get_secret_value().partition(":")[0]
        lease = (
            settings.download_timeout_s + settings.analysis_timeout_s
            + settings.telegram_album_wait_s + LEASE_MARGIN_S
        )  # fmt: skip
        return cls(redis, namespace=f"telegram:{bot_id}", lease_s=lease)

    def _key(self, update_id: int) -> str:
        return self._redis.key(self._namespace, "update", update_id)

    async def claim(self, update_id: int) -> bool:
        key = self._key(update_id)
        waiting = False
        try:
            while True:
                if await self._redis.client.set(key, self._me, nx=True, px=self._lease_ms):
                    if waiting:
                        _log.warning(
                            "update %d: its claim ran out unanswered; answering", update_id
                        )
                    return True
                holder = await self._redis.client.get(key)
                if holder == DONE:
                    return False
                if holder is None:
                    continue  # the claim ran out between the two calls: try again
                if not waiting:
                    waiting = True
                    _log.info("update %d is being answered by another replica; waiting", update_id)
                if self._stopping.is_set():
                    return False  # shutting down: the holder answers it, or its lease runs out
                await self._wait(self._poll_s)
        except (RedisError, OSError) as exc:
            _log.warning(
                "update %d handled without de-duplication: Redis failed (%s)",
                update_id, type(exc).__name__,
            )  # fmt: skip
            return True

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def done(self, update_id: int) -> None:
        try:  # unconditionally: whoever finishes first, the update has been answered
            await self._redis.client.set(self._key(update_id), DONE, ex=DONE_TTL_S)
        except (RedisError, OSError) as exc:
            _log.warning(
                "update %d: could not record it as answered: Redis failed (%s)",
                update_id, type(exc).__name__,
            )  # fmt: skip

    def stop_waiting(self) -> None:
        self._stopping.set()
