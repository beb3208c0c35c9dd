"""Pytest fixtures for the Telegram tests (loaded with ``pytest_plugins``): the Bot API
stand-in, and the check that fails a test on an ERROR log from the bot's own code."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.settings import Settings

from .telegram_api import TelegramStandIn


@pytest.fixture()
async def standin(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TelegramStandIn]:
    # Settings come from the test alone, not from the shell that runs it.
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    # httpx honours proxy variables; the stand-in is on loopback.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    # Opt in to PTB's timedelta periods (as ``deepfake-bot run`` does): no deprecation noise.
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    server = TelegramStandIn()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
    assert not server.unknown, (
        f"the bot called methods the stand-in does not know: {server.unknown}"
    )


@pytest.fixture()
def no_bot_errors(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Our handlers answer their own errors: an ERROR from ``bot.*`` is a failed test unless
    the test asks for ``expect_bot_errors``."""
    yield
    if "expect_bot_errors" in request.fixturenames:
        return
    bad = [
        r
        for r in caplog.get_records("call")
        if r.levelno >= logging.ERROR and r.name.split(".")[0] == "bot"
    ]
    if bad:
        pytest.fail("bot ERROR log: " + "; ".join(r.getMessage() for r in bad))


@pytest.fixture()
def expect_bot_errors() -> None:
    """Marks a test that provokes an ERROR log from the bot on purpose."""
