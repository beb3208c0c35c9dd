"""Flood control (429 ``retry_after``) as PTB's rate limiter, with a scripted Bot API call.
The end-to-end path against the stand-in is in test_telegram_private.py."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.telegram_bot.flood import FloodControl, retry_after_seconds


@pytest.fixture(autouse=True)
def _timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # as ``deepfake-bot run`` sets it


class Endpoint:
    """Fails with ``RetryAfter(wait)`` for each wait in ``waits``, then succeeds."""

    def __init__(self, *waits: int) -> None:
        self.waits = list(waits)
        self.calls: list[float] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(time.monotonic())
        if self.waits:
            raise RetryAfter(self.waits.pop(0))
        return {"ok": True}


async def _send(flood: FloodControl, endpoint: Endpoint, method: str = "sendMessage",
                rate_limit_args: int | None = None) -> Any:  # fmt: skip
    return await flood.process_request(endpoint, (), {}, method, {"chat_id": 1}, rate_limit_args)


def test_retry_after_is_read_as_seconds() -> None:
    assert retry_after_seconds(RetryAfter(7)) == 7.0


async def test_waits_as_told_and_resends() -> None:
    flood = FloodControl(max_retries=3, max_wait_s=10)
    endpoint = Endpoint(1)
    assert await _send(flood, endpoint) == {"ok": True}
    assert len(endpoint.calls) == 2
    assert endpoint.calls[1] - endpoint.calls[0] >= 1.0
    assert flood.retries == 1


async def test_gives_up_after_max_retries(caplog: pytest.LogCaptureFixture) -> None:
    flood = FloodControl(max_retries=1, max_wait_s=10)
    endpoint = Endpoint(0, 0, 0)
    with pytest.raises(RetryAfter):
        await _send(flood, endpoint)
    assert len(endpoint.calls) == 2
    assert any(r.levelno == logging.WARNING and "giving up" in r.getMessage()
               for r in caplog.records)  # fmt: skip


async def test_does_not_wait_longer_than_max_wait() -> None:
    flood = FloodControl(max_retries=5, max_wait_s=30)
    endpoint = Endpoint(3600)
    with pytest.raises(RetryAfter):
        await asyncio.wait_for(_send(flood, endpoint), 1.0)
    assert len(endpoint.calls) == 1


async def test_chat_actions_are_never_retried() -> None:
    flood = FloodControl(max_retries=5, max_wait_s=30)
    endpoint = Endpoint(0)
    with pytest.raises(RetryAfter):
        await _send(flood, endpoint, "sendChatAction")
    assert len(endpoint.calls) == 1


async def test_per_call_retry_budget() -> None:
    flood = FloodControl(max_retries=0, max_wait_s=30)
    endpoint = Endpoint(0, 0)
    assert await _send(flood, endpoint, rate_limit_args=2) == {"ok": True}
    assert len(endpoint.calls) == 3
