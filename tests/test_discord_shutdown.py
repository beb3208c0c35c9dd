"""Orderly shutdown of the Discord bot in-process: intake stops first (new interactions are
told to try again), the check in flight still gets its follow-up, and only then does the
detector close."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.discord_bot import texts
from bot.discord_bot.render import COLOURS
from detector.config import Band

from .standins.discord_api import DiscordStandIn
from .standins.discord_harness import running_discord_on
from .standins.fakes import FakeDetector, always, analysis, jpeg

pytest_plugins = ["tests.standins.discord_fixtures", "tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")


async def test_check_in_flight_is_answered_and_new_ones_are_told_to_retry(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    detector = FakeDetector(always(analysis(0.95)))
    detector.hold.clear()
    async with running_discord_on(s, settings_db, detector) as running:
        first = await s.check(s.user(), channel, image=s.attachment(jpeg()))
        await asyncio.wait_for(detector.entered.wait(), 10)

        stopping = asyncio.create_task(running.service.stop())
        await s.wait_until(lambda: not running.discord.checker.accepting)
        late = await s.check(s.user(), channel, image=s.attachment(jpeg()))
        await s.wait_until(lambda: late.callback is not None)
        await asyncio.sleep(0.2)
        assert not stopping.done()  # waiting for the check in flight
        assert not detector.closed
        detector.hold.set()
        await asyncio.wait_for(stopping, 10)

    (followup,) = first.followups
    assert followup.embeds[0]["color"] == COLOURS[Band.FAKE].value
    assert detector.closed and detector.closed_at > followup.at
    assert late.callback_type == 4 and late.texts == texts.SHUTTING_DOWN
    assert len(detector.seen) == 1
