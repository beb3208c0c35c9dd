"""Telegram flood control: honour ``429 Too Many Requests`` and its ``retry_after``.

Plugged into PTB as its rate limiter, so every Bot API call the bot makes (except
``getUpdates``, which PTB's polling loop handles itself) goes through it. A call answered with
``RetryAfter`` waits the time Telegram asks for and is sent again, up to ``max_retries`` times,
as long as the wait is at most ``max_wait_s`` (a reply that would arrive minutes late is worse
than none). Chat actions are cosmetic and expire after five seconds: they are never retried.

A reply (``send*``) answered with a server error (5xx, or a connection that failed before the
request was sent: PTB's ``NetworkError`` other than ``TimedOut``, which may have been delivered)
is sent again after 0.5, 1, 2 ... s, up to ``max_retries`` times, so a platform hiccup does not
cost a reply; other calls (``getFile``) fail at once and are answered by the caller.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.error import NetworkError, RetryAfter, TimedOut
from telegram.ext import BaseRateLimiter

_log = logging.getLogger(__name__)

_Result = bool | dict[str, Any] | list[dict[str, Any]]
_NEVER_RETRIED = frozenset({"sendChatAction"})


def retry_after_seconds(exc: RetryAfter) -> float:
    # PTB >= 22.2 keeps a timedelta; its public ``retry_after`` still returns an int and warns
    # about a future type change unless PTB_TIMEDELTA is set, so read the timedelta directly.
    raw = getattr(exc, "_retry_after", None)
    if isinstance(raw, dtm.timedelta):
        return raw.total_seconds()
    value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


class FloodControl(BaseRateLimiter[int]):
    """Retry on ``RetryAfter``. ``rate_limit_args`` (an int) overrides ``max_retries`` per call."""

    def __init__(self, max_retries: int = 3, max_wait_s: float = 60.0) -> None:
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.retries = 0  # how many calls were re-sent after a RetryAfter (for logs and tests)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, _Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> _Result:
        allowed = self.max_retries if rate_limit_args is None else rate_limit_args
        if endpoint in _NEVER_RETRIED:
            allowed = 0
        attempt = 0
        while True:
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if attempt >= allowed or wait > self.max_wait_s:
                    _log.warning(
                        "Telegram flood control on %s: retry after %.0f s; giving up after %d "
                        "retr%s",
                        endpoint,
                        wait,
                        attempt,
                        "y" if attempt == 1 else "ies",
                    )
                    raise
                attempt += 1
                self.retries += 1
                _log.info("Telegram flood control on %s: retrying in %.1f s", endpoint, wait)
                await asyncio.sleep(wait + 0.1)
            except NetworkError as exc:
                if (
                    isinstance(exc, TimedOut)
                    or not endpoint.startswith("send")
                    or attempt >= allowed
                ):
                    raise
                wait = 0.5 * 2**attempt
                attempt += 1
                self.retries += 1
                _log.info("Telegram %s failed (%s); retrying in %.1f s", endpoint, exc, wait)
                await asyncio.sleep(wait)
