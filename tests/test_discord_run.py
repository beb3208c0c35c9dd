"""The real entry point with Discord: ``deepfake-bot run`` as a subprocess configured only by
environment variables connects to the stand-in, registers its commands, answers ``/check``
with the real detector, and on SIGTERM still sends the follow-up for the check in flight, then
exits 0. Also: both platforms in one process on one loop, sharing one detector."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from bot.core import ChatSettings, ModelCard
from bot.discord_bot import DiscordBot
from bot.runner import Service, build_checks, build_frontends
from bot.settings import Settings
from bot.telegram_bot import TelegramBot

from .standins.common import bot_process, clean_sigterm_exit, free_port, run_env
from .standins.discord_api import DiscordStandIn
from .standins.fakes import FAKE_CONFIG, FakeDetector, always, analysis, jpeg
from .standins.telegram_api import TelegramStandIn

pytest_plugins = ["tests.standins.discord_fixtures", "tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")


@pytest.mark.slow
async def test_run_serves_discord_and_finishes_the_check_in_flight_on_sigterm(
    discord_standin: DiscordStandIn, tiny_checkpoint: Path, astronaut_jpeg: bytes, tmp_path: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    http_port = free_port()
    env = run_env(
        tiny_checkpoint,
        http_port,
        {
            "DISCORD_TOKEN": s.token,
            "DISCORD_API_URL": s.api_url,
            "DISCORD_GATEWAY_URL": s.gateway_url,
        },
    )
    log = tmp_path / "run.log"
    async with bot_process(env, tmp_path, log) as proc:
        await s.wait_until(lambda: bool(s.shards), timeout=120)
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # ready once the gateway session is up
                async with http.get(f"http://127.0.0.1:{http_port}/readyz") as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("never ready")

        # An attachment whose download trickles in for about two seconds: SIGTERM mid-way.
        slow = s.attachment(astronaut_jpeg, "astronaut.jpg", chunk_size=4096, chunk_delay_s=0.08)
        interaction = await s.check(s.user(), channel, image=slow)
        await s.wait_until(lambda: any(c.route == "GET /cdn" for c in s.calls))
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 90)
    output = clean_sigterm_exit(rc, log, s.token)
    assert interaction.callback_type == 5
    (followup,) = interaction.followups
    (embed,) = followup.embeds
    assert "probability of a face manipulation" in embed["title"]
    assert embed["image"]["url"] == "attachment://annotated-1.jpg"
    assert "registered 4 application commands globally" in output
    assert (tmp_path / "data" / "discord.sqlite3").exists()  # the default settings database


async def test_both_platforms_share_one_detector_on_one_loop(
    standin: TelegramStandIn, discord_standin: DiscordStandIn, tmp_path: Path
) -> None:
    d = discord_standin
    channel = d.channel(d.add_guild(), "general")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        telegram_token=standin.token,
        telegram_api_url=standin.api_url,
        telegram_file_url=standin.file_url,
        telegram_poll_timeout_s=1,
        discord_token=d.token,
        discord_api_url=d.api_url,
        discord_gateway_url=d.gateway_url,
        discord_settings_db=tmp_path / "discord.sqlite3",
        discord_guild_ready_timeout_s=0.05,
        http_enabled=False,
    )
    detector = FakeDetector(always(analysis(0.05)))
    checks = build_checks(settings, detector)
    frontends = build_frontends(
        settings, checks, ModelCard.from_config(FAKE_CONFIG), ChatSettings()
    )
    assert [type(f) for f in frontends] == [TelegramBot, DiscordBot]
    service = Service(frontends, checks, detector, grace_s=10)
    try:
        await service.start()
        user = standin.user()
        chat = standin.private_chat(user)
        photo = standin.message(chat, user, photo=standin.photo_sizes(standin.add_file(jpeg())))
        await standin.push_update({"message": photo})
        interaction = await d.check(d.user(), channel, image=d.attachment(jpeg()))
        telegram_reply = await standin.wait_for("sendPhoto")
        await d.answered(interaction)
    finally:
        await service.stop()
    assert telegram_reply.text.startswith("🟩 No manipulation detected — 5%")
    assert interaction.embeds[0]["title"].startswith("🟩 No manipulation detected — 5%")
    assert len(detector.seen) == 2 and detector.closed  # one detector served both
