"""Messages the bot reads: opt-in auto-scan in server channels (on/off, threshold and action,
kept across restarts in SQLite), direct messages, the Message Content intent, and Discord's
rate limits on sending. The real discord.py client against the Discord stand-in."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bot.discord_bot import texts
from bot.discord_bot.render import COLOURS
from detector.config import Band

from .standins.discord_api import (
    DIRECT_MESSAGES,
    EVERYONE_PERMISSIONS,
    GUILD_MESSAGES,
    MESSAGE_CONTENT,
    DiscordStandIn,
    Interaction,
)
from .standins.discord_harness import discord_settings, running_discord, running_discord_on
from .standins.fakes import FakeDetector, analysis, jpeg

pytest_plugins = ["tests.standins.discord_fixtures", "tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")

SEND = "POST /channels/{channel_id}/messages"


class Scores:
    """A detector script: each test image (a distinct colour) gets the score it was made for."""

    def __init__(self) -> None:
        self.by_image: dict[bytes, float] = {}

    def image(self, p_fake: float) -> bytes:
        n = len(self.by_image) + 1
        data = jpeg(colour=(n * 7 % 256, n * 13 % 256, n * 29 % 256))
        self.by_image[data] = p_fake
        return data

    def __call__(self, data: bytes) -> Any:
        return analysis(self.by_image[data])


async def _admin(
    s: DiscordStandIn, user: dict[str, Any], channel: dict[str, Any], sub: str, **options: Any
) -> Interaction:
    kinds = {str: 3, int: 4}
    opts = [{"name": k, "type": kinds[type(v)], "value": v} for k, v in options.items()]
    interaction = await s.slash(user, channel, f"deepfake {sub}", opts)
    await s.wait_until(lambda: interaction.callback is not None)
    return interaction


async def _post_and_settle(
    s: DiscordStandIn, channel: dict[str, Any], image: bytes, detector: FakeDetector
) -> dict[str, Any]:
    """Post an image and wait until the bot has analysed it and had time to answer."""
    before = len(detector.seen)
    posted = await s.user_sends(channel, s.user("poster"), attachments=[s.attachment(image)])
    await s.wait_until(lambda: len(detector.seen) > before)
    await s.wait_until(lambda: detector.in_flight == 0)
    return posted


async def test_autoscan_threshold_and_switches_survive_restarts(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    guild = s.add_guild()
    images, general = s.channel(guild, "images"), s.channel(guild, "general")
    admin = s.user("mod")
    scores = Scores()
    detector = FakeDetector(scores)
    settings = discord_settings(s, settings_db)

    async with running_discord(settings, detector) as running:
        on = await _admin(s, admin, images, "autoscan", state="on")
        threshold = await _admin(s, admin, images, "threshold", percent=50)
        flagged = await _post_and_settle(s, images, scores.image(0.6), detector)
        await s.wait_for(SEND)
        await _post_and_settle(s, images, scores.image(0.3), detector)
        await s.user_sends(general, s.user(), attachments=[s.attachment(jpeg())])
        await running.discord.checker.inflight.wait_idle()
    assert "Auto-scan is **on**" in on.texts and f"<#{images['id']}>" in on.texts
    assert texts.INTENT_MISSING not in on.texts
    assert "**50%**" in threshold.texts and "model default: 70%" in threshold.texts
    (reply,) = s.sent_to(images)  # only the image at or above 50%
    assert reply.reply_to == flagged["id"]
    assert reply.body["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert reply.content == texts.AUTOSCAN_INTRO.format(what="an image")
    assert reply.embeds[0]["color"] == COLOURS[Band.UNCERTAIN].value  # 60%: banded honestly
    assert reply.embeds[0]["image"]["url"] == "attachment://annotated-1.jpg"
    assert len(detector.seen) == 2 and s.sent_to(general) == []  # #general is not scanned

    # A restart reads the switches back from the database.
    second = FakeDetector(scores)
    async with running_discord(settings, second):
        status = await _admin(s, admin, images, "status")
        await _post_and_settle(s, images, scores.image(0.55), second)
        await s.wait_for(SEND, count=2)
        off = await _admin(s, admin, images, "autoscan", state="off")
    assert f"<#{images['id']}>" in status.texts and "50% and above" in status.texts
    assert "Auto-scan is **off**" in off.texts

    third = FakeDetector(scores)
    async with running_discord(settings, third) as running:
        await s.user_sends(images, s.user(), attachments=[s.attachment(scores.image(0.99))])
        status = await _admin(s, admin, images, "status")
        await running.discord.checker.inflight.wait_idle()
    assert "off in every channel" in status.texts
    assert "50% and above" in status.texts  # the threshold stays
    assert len(s.sent_to(images)) == 2 and third.seen == []


async def test_autoscan_uses_the_models_threshold_by_default_and_stays_quiet_otherwise(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "images")
    scores = Scores()
    detector = FakeDetector(scores)
    async with running_discord_on(s, settings_db, detector) as running:
        await _admin(s, s.user("mod"), channel, "autoscan", state="on")
        await _post_and_settle(s, channel, scores.image(0.69), detector)  # below 70%
        fake = await _post_and_settle(s, channel, scores.image(0.7), detector)
        await s.user_sends(
            channel, s.user("bot-friend", bot=True), attachments=[s.attachment(scores.image(0.99))]
        )
        await s.user_sends(channel, s.user(), "just text")
        await running.discord.checker.inflight.wait_idle()
    (reply,) = s.sent_to(channel)
    assert reply.reply_to == fake["id"]
    assert reply.embeds[0]["color"] == COLOURS[Band.FAKE].value
    assert len(detector.seen) == 2  # other bots' images are not checked


async def test_autoscan_can_react_instead_of_replying(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "images")
    scores = Scores()
    detector = FakeDetector(scores)
    react = "PUT /channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me"
    async with running_discord_on(s, settings_db, detector):
        on = await _admin(s, s.user("mod"), channel, "autoscan", state="on", action="react")
        await _admin(s, s.user("mod"), channel, "threshold", percent=40)
        likely = await _post_and_settle(s, channel, scores.image(0.9), detector)
        await s.wait_for(react)
        unsure = await _post_and_settle(s, channel, scores.image(0.45), detector)
        await s.wait_for(react, count=2)
    assert "react with" in on.texts
    assert s.reactions == [
        (int(channel["id"]), int(likely["id"]), "🟥"),
        (int(channel["id"]), int(unsure["id"]), "🟨"),  # flagged, but not "likely manipulated"
    ]
    assert s.sent_to(channel) == []


async def test_autoscan_tells_admins_about_missing_channel_permissions(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    no_files = EVERYONE_PERMISSIONS & ~(1 << 15) & ~(1 << 14)  # no Attach Files, Embed Links
    channel = s.channel(s.add_guild(bot_permissions=no_files), "images")
    async with running_discord_on(s, settings_db, FakeDetector(Scores())):
        on = await _admin(s, s.user("mod"), channel, "autoscan", state="on")
    assert "missing: Embed Links, Attach Files" in on.texts


async def test_settings_are_forgotten_when_the_bot_leaves_a_server(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    guild = s.add_guild()
    channel = s.channel(guild, "images")
    async with running_discord_on(s, settings_db, FakeDetector(Scores())) as running:
        await _admin(s, s.user("mod"), channel, "autoscan", state="on")
        store = running.discord.store
        assert store.autoscan_on(int(guild["id"]), int(channel["id"]))
        await s.dispatch(s.shards[0], "GUILD_DELETE", {"id": guild["id"]})
        await s.wait_until(lambda: not store.autoscan_on(int(guild["id"]), int(channel["id"])))


async def test_direct_message_images_are_checked_and_answered(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    user = s.user()
    dm = s.dm_channel(user)
    scores = Scores()
    detector = FakeDetector(scores)
    async with running_discord_on(s, settings_db, detector):
        posted = await s.user_sends(
            dm, user, attachments=[s.attachment(scores.image(0.2), "me.jpg")]
        )
        reply = await s.wait_for(SEND)
        text = await s.user_sends(dm, user, "hello?")
        hint = await s.wait_for(SEND, count=2)
    assert s.calls_to("POST /channels/{channel_id}/typing")
    assert reply.reply_to == posted["id"]
    (embed,) = reply.embeds
    assert embed["color"] == COLOURS[Band.REAL].value and embed["author"]["name"] == "me.jpg"
    assert hint.reply_to == text["id"]
    assert hint.content == texts.DM_HELP


async def test_a_429_on_sending_is_retried_after_the_wait_discord_asks_for(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    user = s.user()
    dm = s.dm_channel(user)
    scores = Scores()
    s.fail_next(SEND, 429, retry_after=0.4)
    async with running_discord_on(s, settings_db, FakeDetector(scores)):
        await s.user_sends(dm, user, attachments=[s.attachment(scores.image(0.2))])
        await s.wait_for(SEND, where=lambda c: c.status == 200)
    limited, sent = s.calls_to(SEND)
    assert (limited.status, sent.status) == (429, 200)
    assert sent.at - limited.at >= 0.4
    assert sent.embeds == limited.embeds and sent.embeds[0]["color"] == COLOURS[Band.REAL].value


async def test_missing_message_content_intent_is_reported_and_commands_still_work(
    discord_standin: DiscordStandIn, settings_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = discord_standin
    s.message_content_allowed = False  # not enabled in the Developer Portal
    channel = s.channel(s.add_guild(), "images")
    scores = Scores()
    detector = FakeDetector(scores)
    caplog.set_level(logging.INFO)
    async with running_discord_on(s, settings_db, detector) as running:
        on = await _admin(s, s.user("mod"), channel, "autoscan", state="on")
        status = await _admin(s, s.user("mod"), channel, "status")
        await s.user_sends(channel, s.user(), attachments=[s.attachment(scores.image(0.9))])
        checked = await s.answered(
            await s.check(s.user(), channel, image=s.attachment(scores.image(0.9)))
        )
        assert running.discord.intents.granted is False
    first, second = s.identifies
    assert first["intents"] & MESSAGE_CONTENT and s.closed_with == [4014]
    assert not second["intents"] & (MESSAGE_CONTENT | GUILD_MESSAGES)
    assert second["intents"] & DIRECT_MESSAGES
    assert texts.INTENT_MISSING in on.texts
    assert "missing: auto-scan cannot see images" in status.texts
    assert checked.embeds[0]["color"] == COLOURS[Band.FAKE].value
    assert len(detector.seen) == 1  # the /check image only
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert texts.INTENT_LOG in warnings


async def test_message_content_can_be_switched_off_by_setting(
    discord_standin: DiscordStandIn, settings_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "images")
    detector = FakeDetector(Scores())
    async with running_discord_on(s, settings_db, detector, discord_message_content=False):
        on = await _admin(s, s.user("mod"), channel, "autoscan", state="on")
    (identify,) = s.identifies
    assert not identify["intents"] & MESSAGE_CONTENT
    assert texts.INTENT_MISSING in on.texts
    assert texts.INTENT_OFF_LOG in caplog.text
