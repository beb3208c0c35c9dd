"""The per-sender sliding-window rate limiter, on a fake clock."""

from __future__ import annotations

import pytest

from bot.core import RateLimited, SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_allows_limit_then_refuses_with_time_until_a_slot_frees() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(3, 60.0, clock=clock)
    for step in range(3):
        await limiter.acquire("alice")
        clock.now += 10 * (step + 1)  # checks at t=0, 10, 30
    clock.now = 1045.0
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("alice")
    assert caught.value.retry_after_s == pytest.approx(15.0)  # the t=0 check leaves at t=60
    assert "limit of 3 checks per minute" in caught.value.user_message
    assert "try again in 15 seconds" in caught.value.user_message
    await limiter.acquire("bob")  # others are not affected
    clock.now = 1060.0
    await limiter.acquire("alice")  # the oldest check left the window


async def test_refused_attempts_are_not_recorded() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(1, 60.0, clock=clock)
    await limiter.acquire("alice")
    for _ in range(5):
        clock.now += 5
        with pytest.raises(RateLimited):
            await limiter.acquire("alice")
    clock.now = 1060.0
    await limiter.acquire("alice")


async def test_cost_counts_several_checks_at_once() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(5, 60.0, clock=clock)
    await limiter.acquire("alice", cost=3)
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("alice", cost=3)
    assert caught.value.retry_after_s == pytest.approx(60.0)
    await limiter.acquire("alice", cost=2)
    with pytest.raises(RateLimited) as too_big:
        await SlidingWindowLimiter(5, 60.0, clock=clock).acquire("carol", cost=6)
    assert too_big.value.retry_after_s == pytest.approx(60.0)


async def test_refund_gives_back_the_latest_checks() -> None:
    limiter = SlidingWindowLimiter(2, 60.0, clock=Clock())
    await limiter.acquire("alice", cost=2)
    await limiter.refund("alice", 1)
    await limiter.acquire("alice")
    with pytest.raises(RateLimited):
        await limiter.acquire("alice")
    await limiter.refund("nobody")  # harmless


async def test_zero_disables() -> None:
    limiter = SlidingWindowLimiter(0, 60.0, clock=Clock())
    for _ in range(1000):
        await limiter.acquire("alice")
    assert len(limiter) == 0


async def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(5, 60.0, max_keys=100, clock=clock)
    for user in range(1000):
        await limiter.acquire(f"user{user}")
    assert len(limiter) == 100
    clock.now += 61
    await limiter.acquire("late")
    assert len(limiter) == 1  # everyone else left the window and was forgotten


async def test_one_second_wording() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(1, 60.0, clock=clock)
    await limiter.acquire("a")
    clock.now += 59.5
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("a")
    assert caught.value.user_message.endswith("Please try again in 1 second.")
