"""The shared sliding-window limiter against a real redis-server (its Lua script runs in Redis;
fakeredis would need lupa): the same answers as the in-memory limiter on a fake clock, one
budget across two clients (two replicas), and fail-open when Redis is gone."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.core import RateLimited
from bot.core.redis_ratelimit import RedisWindowLimiter
from bot.redis_client import SharedRedis, connect

from .standins.redis_fixtures import redis_url
from .standins.redis_server import redis_server

__all__ = ["redis_url"]  # the fixture, imported for pytest
Pair = tuple[SharedRedis, SharedRedis]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
async def replicas(redis_url: str) -> AsyncIterator[Pair]:
    """Two connections (two replicas' own) on one fresh key prefix."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    first = await connect(SecretStr(redis_url), prefix)
    second = await connect(SecretStr(redis_url), prefix)
    yield first, second
    await first.close()
    await second.close()


async def test_same_answers_as_the_in_memory_limiter(
    replicas: Pair,
) -> None:
    clock = Clock()
    limiter = RedisWindowLimiter(replicas[0], 3, 60.0, clock=clock)
    start = clock.now
    for step in range(3):
        await limiter.acquire("alice")
        clock.now += 10 * (step + 1)  # checks at t=0, 10, 30
    clock.now = start + 45
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("alice")
    assert caught.value.retry_after_s == pytest.approx(15.0)  # the t=0 check leaves at t=60
    await limiter.acquire("bob")  # others are not affected
    for _ in range(3):  # refused attempts are not recorded
        clock.now += 1
        with pytest.raises(RateLimited):
            await limiter.acquire("alice")
    clock.now = start + 60
    await limiter.acquire("alice")  # the oldest check left the window


async def test_cost_refund_and_a_cost_that_never_fits(replicas: Pair) -> None:
    clock = Clock()
    limiter = RedisWindowLimiter(replicas[0], 5, 60.0, clock=clock)
    await limiter.acquire("alice", cost=3)
    clock.now += 20
    await limiter.acquire("alice", cost=2)
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("alice", cost=3)
    assert caught.value.retry_after_s == pytest.approx(40.0)  # all three of t=0 must leave
    await limiter.refund("alice", 1)  # gives back one of the latest (t=20) checks
    await limiter.acquire("alice")
    with pytest.raises(RateLimited):
        await limiter.acquire("alice")
    with pytest.raises(RateLimited) as too_big:
        await limiter.acquire("carol", cost=6)
    assert too_big.value.retry_after_s == pytest.approx(60.0)
    await limiter.refund("nobody")  # harmless


async def test_one_budget_across_replicas_and_keys_expire(
    replicas: Pair,
) -> None:
    first, second = replicas
    a = RedisWindowLimiter(first, 4, 60.0)
    b = RedisWindowLimiter(second, 4, 60.0)
    limiters = [a, b] * 10

    async def attempt(limiter: RedisWindowLimiter) -> bool:
        try:
            await limiter.acquire("flooder")
        except RateLimited:
            return False
        return True

    granted = await asyncio.gather(*(attempt(x) for x in limiters))
    assert sum(granted) == 4  # not 4 per replica
    ttl = await first.client.pttl(first.key("ratelimit", "flooder"))
    assert 0 < ttl <= 60_000  # the sender's window is forgotten a window after the last check


async def test_zero_disables_without_touching_redis(replicas: Pair) -> None:
    redis = replicas[0]
    limiter = RedisWindowLimiter(redis, 0)
    for _ in range(50):
        await limiter.acquire("alice")
    assert await redis.client.keys(redis.key("*")) == []


async def test_fails_open_with_a_warning_when_redis_is_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path) as url:
        redis = await connect(SecretStr(url), "gone:", timeout_s=1.0)
        limiter = RedisWindowLimiter(redis, 1)
        await limiter.acquire("alice")
        with pytest.raises(RateLimited):
            await limiter.acquire("alice")
    # The server is stopped now.
    with caplog.at_level(logging.WARNING, logger="bot.core.redis_ratelimit"):
        await limiter.acquire("alice")
        await limiter.refund("alice")
    await redis.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert any("rate limit not enforced: Redis failed" in w for w in warnings), warnings
    assert any("refund lost" in w for w in warnings), warnings
