"""Per-server settings in Redis (``REDIS_URL``), for a bot whose shards run in several
processes: each process serves only the servers of its shards, but a shard moves to another
process on a restart or a rebalance, and its servers' settings must go with it.

One hash per server, ``{REDIS_PREFIX}discord:guild:{id}``, with the fields ``threshold``,
``action``, ``public`` and one ``channel:{id}`` per auto-scanned channel, so every change is one
atomic command and ``/deepfake`` in one process never overwrites another's change to a
different field. A process reads every server's hash when it starts and one server's again
when the gateway hands it that server (``refresh``, on GUILD_CREATE), so a server that moved
here brings the settings its previous process wrote.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TypeVar

from bot.discord_bot.store import (
    DEFAULT,
    AutoscanAction,
    GuildSettings,
    Mirror,
    SettingsUnavailable,
    check_threshold,
)
from bot.redis_client import SharedRedis

_log = logging.getLogger(__name__)

T = TypeVar("T")
_CHANNEL = "channel:"
_BATCH = 500  # hashes read per round-trip at start


class RedisGuildSettingsStore(Mirror):
    def __init__(self, redis: SharedRedis) -> None:
        super().__init__()
        self.redis = redis
        self._lock = asyncio.Lock()  # a refresh never lands between a write and its mirroring

    def _key(self, guild_id: int) -> str:
        return self.redis.key("discord", "guild", guild_id)

    async def open(self) -> None:
        """Load every server's settings. Raises ``ValueError`` naming the key when a hash is
        not this version's settings (rather than starting with every switch off)."""
        prefix = self._key(0)[:-1]
        pattern = re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + "*"
        client = self.redis.client

        async def load() -> None:
            keys = [k async for k in client.scan_iter(match=pattern, count=_BATCH)]
            for start in range(0, len(keys), _BATCH):
                batch = keys[start : start + _BATCH]
                async with client.pipeline(transaction=False) as pipe:
                    for key in batch:
                        pipe.hgetall(key)
                    hashes = await pipe.execute()
                for key, fields in zip(batch, hashes, strict=True):
                    name = _text(key)
                    guild_id = int(name[len(prefix) :])
                    self._set_mirror(guild_id, _parse(name, fields))

        await _guarded(load)
        scanned = sum(len(g.autoscan_channels) for g in self._guilds.values())
        _log.info(
            "Discord settings (Redis): %d server(s) configured, auto-scan on in %d channel(s)",
            len(self._guilds),
            scanned,
        )

    async def close(self) -> None:
        """The connection is the composition root's to close (other stores share it)."""

    async def refresh(self, guild_id: int) -> None:
        key = self._key(guild_id)
        async with self._lock:
            fields = await _guarded(lambda: self.redis.client.hgetall(key))
            self._set_mirror(guild_id, _parse(key, fields))

    async def set_autoscan(self, guild_id: int, channel_id: int, enabled: bool) -> None:
        field = f"{_CHANNEL}{channel_id}"
        client, key = self.redis.client, self._key(guild_id)
        async with self._lock:
            if enabled:
                await _guarded(lambda: client.hset(key, field, "1"))
            else:
                await _guarded(lambda: client.hdel(key, field))
            old = self.get(guild_id).autoscan_channels
            channels = old | {channel_id} if enabled else old - {channel_id}
            self._set_mirror(guild_id, replace(self.get(guild_id), autoscan_channels=channels))

    async def set_threshold(self, guild_id: int, threshold: float | None) -> None:
        check_threshold(threshold)
        value = None if threshold is None else repr(threshold)
        await self._update(guild_id, "threshold", value, threshold=threshold)

    async def set_action(self, guild_id: int, action: AutoscanAction) -> None:
        await self._update(guild_id, "action", action.value, autoscan_action=action)

    async def set_public(self, guild_id: int, public: bool) -> None:
        await self._update(guild_id, "public", "1" if public else "0", public_replies=public)

    async def forget_guild(self, guild_id: int) -> None:
        key = self._key(guild_id)
        async with self._lock:
            await _guarded(lambda: self.redis.client.delete(key))
            self._guilds.pop(guild_id, None)

    async def _update(
        self, guild_id: int, field: str, value: str | None, **changes: object
    ) -> None:
        client, key = self.redis.client, self._key(guild_id)
        async with self._lock:
            if value is None:
                await _guarded(lambda: client.hdel(key, field))
            else:
                await _guarded(lambda: client.hset(key, field, value))
            self._set_mirror(guild_id, replace(self.get(guild_id), **changes))  # type: ignore[arg-type]

    def _set_mirror(self, guild_id: int, settings: GuildSettings) -> None:
        if settings == DEFAULT:  # nothing set: as if never configured (keeps the mirror small)
            self._guilds.pop(guild_id, None)
        else:
            self._guilds[guild_id] = settings


async def _guarded(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, with Redis and connection failures as :class:`SettingsUnavailable`."""
    from redis.exceptions import RedisError

    try:
        return await call()
    except (RedisError, OSError) as exc:
        raise SettingsUnavailable(f"Redis: {type(exc).__name__}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse(key: str, raw: Mapping[bytes | str, bytes | str]) -> GuildSettings:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    try:
        threshold = fields.pop("threshold", None)
        settings = GuildSettings(
            threshold=None if threshold is None else float(threshold),
            autoscan_action=AutoscanAction(fields.pop("action", AutoscanAction.REPLY.value)),
            public_replies={"0": False, "1": True}[fields.pop("public", "0")],
            autoscan_channels=frozenset(
                int(name[len(_CHANNEL) :]) for name in fields if name.startswith(_CHANNEL)
            ),
        )
        check_threshold(settings.threshold)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"Discord settings in Redis, key {key}: not settings ({exc})") from None
    return settings
