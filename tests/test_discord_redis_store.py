"""Per-server Discord settings in Redis (unit tests on fakeredis; the two-process test uses a
real redis-server): what one process writes another reads, at start and on ``refresh``; one
hash per server under the prefix; a foreign hash is refused by key; an unreachable Redis is a
``SettingsUnavailable`` with text fit for the admin, and the mirror keeps the old value."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
from redis.asyncio import Redis

from bot.discord_bot.redis_store import RedisGuildSettingsStore
from bot.discord_bot.store import AutoscanAction, GuildSettings, SettingsUnavailable
from bot.redis_client import SharedRedis

GUILD, OTHER = 111, 222


@pytest.fixture()
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture()
async def shared(server: fakeredis.FakeServer) -> AsyncIterator[SharedRedis]:
    redis = SharedRedis(fakeredis.FakeAsyncRedis(server=server), "t*[1]:")  # glob characters
    yield redis
    await redis.close()


async def _store(server: fakeredis.FakeServer) -> RedisGuildSettingsStore:
    """A store as another process would have: its own connection to the same server."""
    store = RedisGuildSettingsStore(SharedRedis(fakeredis.FakeAsyncRedis(server=server), "t*[1]:"))
    await store.open()
    return store


async def test_what_one_process_writes_the_next_one_reads(
    server: fakeredis.FakeServer, shared: SharedRedis
) -> None:
    first = RedisGuildSettingsStore(shared)
    await first.open()
    await first.set_autoscan(GUILD, 10, True)
    await first.set_autoscan(GUILD, 11, True)
    await first.set_autoscan(GUILD, 11, False)
    await first.set_threshold(GUILD, 0.55)
    await first.set_action(GUILD, AutoscanAction.REACT)
    await first.set_public(OTHER, True)
    wanted = GuildSettings(
        autoscan_channels=frozenset({10}), threshold=0.55, autoscan_action=AutoscanAction.REACT
    )
    assert first.get(GUILD) == wanted

    second = await _store(server)
    assert second.get(GUILD) == wanted
    assert second.get(OTHER) == GuildSettings(public_replies=True)
    assert second.autoscan_on(GUILD, 99, parent_id=10)
    assert not second.autoscan_on(GUILD, 11) and second.get(333) == GuildSettings()
    # One hash per server under the prefix, one field per switch.
    fields = await shared.client.hgetall(f"t*[1]:discord:guild:{GUILD}")
    assert fields == {b"channel:10": b"1", b"threshold": b"0.55", b"action": b"react"}


async def test_refresh_brings_a_change_made_by_another_process(
    server: fakeredis.FakeServer, shared: SharedRedis
) -> None:
    here = RedisGuildSettingsStore(shared)
    await here.open()
    there = await _store(server)
    await there.set_autoscan(GUILD, 10, True)
    await there.set_threshold(GUILD, 0.7)
    assert here.get(GUILD) == GuildSettings()  # read at start, before the change
    await here.refresh(GUILD)  # the server arrived here (its shard moved)
    assert here.get(GUILD) == GuildSettings(autoscan_channels=frozenset({10}), threshold=0.7)

    await there.set_threshold(GUILD, None)
    await there.forget_guild(GUILD)
    await here.refresh(GUILD)
    assert here.get(GUILD) == GuildSettings()
    assert not await shared.client.exists(f"t*[1]:discord:guild:{GUILD}")


async def test_a_foreign_hash_is_refused_by_key(shared: SharedRedis) -> None:
    await shared.client.hset(f"t*[1]:discord:guild:{GUILD}", "action", "delete-everything")
    await shared.client.hset("t*[1]:other-thing", "action", "ignored: not a guild key")
    with pytest.raises(ValueError, match=rf"key t\*\[1\]:discord:guild:{GUILD}"):
        await RedisGuildSettingsStore(shared).open()


async def test_an_unreachable_redis_is_settings_unavailable_and_changes_nothing() -> None:
    dead = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)  # discard port
    store = RedisGuildSettingsStore(SharedRedis(dead, "t:"))
    try:
        with pytest.raises(SettingsUnavailable) as raised:
            await store.set_autoscan(GUILD, 10, True)
    finally:
        await dead.aclose()
    assert str(raised.value) == (
        "The server settings could not be saved just now; please try again."
    )
    assert "Redis: ConnectionError" in raised.value.detail
    assert store.get(GUILD) == GuildSettings()


async def test_a_bad_threshold_is_refused_before_writing(shared: SharedRedis) -> None:
    store = RedisGuildSettingsStore(shared)
    with pytest.raises(ValueError, match="between 0 and 1"):
        await store.set_threshold(GUILD, 1.5)
    assert await shared.client.keys("*") == []
