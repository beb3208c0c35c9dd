"""The IDENTIFY lock against a real redis-server: contenders for one rate-limit bucket get
their turns at least one interval apart, whichever process (connection) they are in; other
buckets do not wait; a dead Redis or a wait past the deadline gives up with a warning (the
caller then paces in-process); the sharded client's hook takes the lock for its bucket."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator

import discord
import pytest
from redis.asyncio import Redis

from bot.discord_bot.identify import IdentifyLock, PacedShardedClient
from bot.redis_client import SharedRedis, connect
from tests.standins.redis_fixtures import redis_url  # noqa: F401 - a fixture

INTERVAL = 0.5


@pytest.fixture()
async def processes(
    redis_url: str, request: pytest.FixtureRequest  # noqa: F811
) -> AsyncIterator[list[SharedRedis]]:
    """Three connections, as three shard processes would have, under a prefix of this test."""
    from pydantic import SecretStr

    prefix = f"{request.node.name}:"
    shared = [await connect(SecretStr(redis_url), prefix) for _ in range(3)]
    yield shared
    for redis in shared:
        await redis.close()


async def _turns(locks: list[IdentifyLock], bucket: int) -> list[float]:
    async def take(lock: IdentifyLock) -> float:
        assert await lock.wait_turn(bucket)
        return time.monotonic()

    return sorted(await asyncio.gather(*(take(lock) for lock in locks)))


async def test_one_bucket_takes_turns_an_interval_apart_across_processes(
    processes: list[SharedRedis],
) -> None:
    locks = [IdentifyLock(r, interval_s=INTERVAL) for r in processes]
    start = time.monotonic()
    turns = await _turns(locks, bucket=0)
    assert turns[0] - start < INTERVAL / 2  # the first does not wait
    gaps = [b - a for a, b in itertools.pairwise(turns)]
    assert all(gap >= INTERVAL - 0.01 for gap in gaps), gaps
    assert all(gap < INTERVAL + 0.3 for gap in gaps), gaps  # woken by the key's expiry

    ttl = await processes[0].client.pttl(f"{processes[0].prefix}discord:identify:0")
    assert 0 < ttl <= INTERVAL * 1000  # the last turn's key expires by itself


async def test_other_buckets_do_not_wait(processes: list[SharedRedis]) -> None:
    locks = [IdentifyLock(r, interval_s=INTERVAL) for r in processes]
    start = time.monotonic()
    for bucket, lock in enumerate(locks):
        assert await lock.wait_turn(bucket)
    assert time.monotonic() - start < INTERVAL / 2


async def test_past_the_deadline_it_gives_up_with_a_warning(
    processes: list[SharedRedis], caplog: pytest.LogCaptureFixture
) -> None:
    holder = IdentifyLock(processes[0], interval_s=30)
    assert await holder.wait_turn(0)
    waiting = IdentifyLock(processes[1], interval_s=30, max_wait_s=0.3)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert not await waiting.wait_turn(0)
    assert 0.3 <= time.monotonic() - start < 1.0
    assert "in-process pacing only" in caplog.text


async def test_a_dead_redis_gives_up_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    dead = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)  # discard port
    lock = IdentifyLock(SharedRedis(dead, "t:"), interval_s=INTERVAL)
    try:
        with caplog.at_level(logging.WARNING):
            assert not await lock.wait_turn(0)
    finally:
        await dead.aclose()
    assert "Redis failed while taking the identify turn (ConnectionError)" in caplog.text


async def test_the_sharded_clients_hook_takes_its_buckets_turn(
    processes: list[SharedRedis],
) -> None:
    lock = IdentifyLock(processes[0], interval_s=INTERVAL)
    client = PacedShardedClient(
        intents=discord.Intents(guilds=True), shard_count=4, identify_lock=lock, concurrency=2
    )
    async with client:  # set up on this loop; closed on exit
        start = time.monotonic()
        await client.before_identify_hook(3, initial=False)  # the library would sleep 5 s
        await client.before_identify_hook(1, initial=False)  # same bucket (1 % 2): waits
        elapsed = time.monotonic() - start
    assert INTERVAL - 0.01 <= elapsed < INTERVAL + 0.4
    keys = await processes[0].client.keys(f"{processes[0].prefix}*")
    assert keys == [f"{processes[0].prefix}discord:identify:1".encode()]
