"""The Redis update-claim store on fakeredis (unit tests; two real replicas sharing a real
redis-server are in test_telegram_replicas.py): one claim wins, ``done`` drops later copies for
a day, a copy arriving meanwhile waits for the outcome, a dead holder's claim runs out, and
Redis failing lets the update through with a warning."""

from __future__ import annotations

import asyncio
import logging

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.redis_client import SharedRedis
from bot.telegram_bot.claims import DONE_TTL_S, RedisUpdateClaims
from bot.telegram_bot.handled import HandledUpdates, UpdateLedger


def replicas(n: int = 2, *, lease_s: float = 60.0) -> list[RedisUpdateClaims]:
    """``n`` replicas' stores on one fake server."""
    server = fakeredis.FakeServer()
    return [
        RedisUpdateClaims(
            SharedRedis(fakeredis.FakeAsyncRedis(server=server), "t:"),
            namespace="telegram:1",
            lease_s=lease_s,
            poll_s=0.02,
        )
        for _ in range(n)
    ]


async def test_one_claim_wins_and_done_drops_later_copies() -> None:
    a, b = replicas()
    assert await a.claim(7)
    waiting = asyncio.create_task(b.claim(7))  # a copy while replica a is still answering
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await a.done(7)
    assert await asyncio.wait_for(waiting, 2) is False
    assert not await a.claim(7) and not await b.claim(7)
    assert await b.claim(8)  # other updates are independent
    ttl = await a._redis.client.ttl("t:telegram:1:update:7")
    assert DONE_TTL_S - 5 < ttl <= DONE_TTL_S


async def test_concurrent_claims_of_one_update_grant_exactly_one() -> None:
    stores = replicas(4)
    tasks = [asyncio.create_task(s.claim(42)) for s in stores]
    # Wait for the first claim to settle (no fixed delay: a loaded machine may take longer),
    # then give the others time to go wrong: they must keep waiting on the winner.
    await asyncio.wait(tasks, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    await asyncio.sleep(0.1)
    finished = [(s, t.result()) for s, t in zip(stores, tasks, strict=True) if t.done()]
    assert len(finished) == 1 and finished[0][1] is True  # the others wait on the winner
    await finished[0][0].done(42)
    results = await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert results.count(True) == 1


async def test_a_dead_holders_claim_runs_out_and_the_copy_is_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    crashed, restarted = replicas(lease_s=0.3)
    assert await crashed.claim(9)  # ... and never calls done: the process died mid-check
    with caplog.at_level(logging.INFO, logger="bot.telegram_bot.claims"):
        assert await asyncio.wait_for(restarted.claim(9), 3) is True
    messages = [r.getMessage() for r in caplog.records]
    assert any("being answered by another replica; waiting" in m for m in messages)
    assert any("its claim ran out unanswered; answering" in m for m in messages)


async def test_stop_waiting_gives_up_on_an_update_held_elsewhere() -> None:
    a, b = replicas()
    assert await a.claim(5)
    waiting = asyncio.create_task(b.claim(5))
    await asyncio.sleep(0.05)
    b.stop_waiting()
    assert await asyncio.wait_for(waiting, 1) is False


class _Down:
    """A Redis client whose every call fails as a dead server's would."""

    async def set(self, *args: object, **kwargs: object) -> None:
        raise RedisConnectionError("Connection refused")

    async def get(self, *args: object, **kwargs: object) -> None:
        raise RedisConnectionError("Connection refused")


async def test_redis_down_fails_open_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    down = SharedRedis(_Down(), "t:")  # type: ignore[arg-type]
    store = RedisUpdateClaims(down, namespace="x", lease_s=1)
    with caplog.at_level(logging.WARNING, logger="bot.telegram_bot.claims"):
        assert await store.claim(1) is True
        await store.done(1)
    messages = [r.getMessage() for r in caplog.records]
    assert any("without de-duplication: Redis failed (ConnectionError)" in m for m in messages)
    assert any("could not record it as answered" in m for m in messages)


async def test_both_stores_are_update_ledgers() -> None:
    local: UpdateLedger = HandledUpdates()
    assert await local.claim(3)
    await local.done(3)
    assert not await local.claim(3)
    shared: UpdateLedger = replicas(1)[0]
    assert await shared.claim(3)
