"""Videos on Discord, end to end against the stand-in: ``/check`` on a video attachment and the
message menu on a message with a clip and a GIF get an embed per video (a line per face track)
with the contact sheet; with videos off the clip is skipped as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.discord_bot.render import COLOURS
from detector.config import Band

from .standins.discord_api import DiscordStandIn
from .standins.discord_harness import running_discord_on
from .standins.fakes import ANNOTATED, FakeDetector, always, analysis, jpeg, video_analysis

pytest_plugins = ["tests.standins.discord_fixtures", "tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")

CLIP = b"\x00\x00\x00\x18ftypmp42 (the fake detector does not read it)"
GIF = b"GIF89a (an animation, as far as the fake detector is concerned)"


def _file_bytes(call_files: dict[str, tuple[str, bytes]], name: str) -> bytes:
    matches = [data for filename, data in call_files.values() if filename == name]
    assert len(matches) == 1, f"{name} uploaded {len(matches)} times"
    return matches[0]


async def test_slash_check_on_a_video_attachment(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    detector = FakeDetector(always(video_analysis([0.1, 0.2, 0.1], [0.9, 0.8, 0.95])))
    async with running_discord_on(s, settings_db, detector):
        attachment = s.attachment(CLIP, "party.mp4", "video/mp4")
        interaction = await s.check(s.user(), channel, image=attachment)
        await s.answered(interaction)
    assert detector.seen == [CLIP]
    (followup,) = interaction.followups
    (embed,) = followup.embeds
    assert embed["color"] == COLOURS[Band.FAKE].value
    assert embed["title"].startswith("🟥 Likely manipulated — 88%")
    assert embed["author"]["name"] == "party.mp4"
    lines = embed["description"].splitlines()
    assert lines[0].startswith("Checked 3 frames of a 0.8 s video; 2 faces followed")
    assert lines[1].startswith("Face 1 (0.0-0.5 s, 3 frames): 🟩 13% on average")
    assert lines[2].startswith("Face 2 (0.0-0.5 s, 3 frames): 🟥 88% on average, peak 95%")
    assert "not been calibrated on real deepfake videos" in embed["description"]
    assert "fields" not in embed or embed["fields"] == []  # the tracks are in the text
    assert embed["image"]["url"] == "attachment://frames-1.jpg"
    assert _file_bytes(followup.files, "frames-1.jpg") == ANNOTATED


async def test_message_menu_checks_a_clip_a_gif_and_a_photo(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    photo = jpeg()
    answers = {
        CLIP: video_analysis([0.1, 0.1]),
        GIF: video_analysis([0.8, 0.9], container="gif"),
        photo: analysis(0.2),
    }
    detector = FakeDetector(lambda data: answers[data])
    async with running_discord_on(s, settings_db, detector):
        posted = s.message(channel, s.user("bob"), "look", attachments=[
            s.attachment(CLIP, "clip.webm", "video/webm"),
            s.attachment(GIF, "dance.gif", "image/gif"),
            s.attachment(photo, "photo.jpg"),
        ])  # fmt: skip
        interaction = await s.menu(s.user(), channel, posted)
        await s.answered(interaction)
    assert sorted(detector.seen) == sorted([CLIP, GIF, photo])
    (followup,) = interaction.followups
    clip, gif, picture = followup.embeds
    assert clip["description"].startswith("Checked 2 frames of a 0.5 s video")
    assert gif["description"].startswith("Checked 2 frames of a 0.5 s animation")
    assert gif["color"] == COLOURS[Band.FAKE].value
    assert picture["title"].startswith("🟩 No manipulation detected")


async def test_with_videos_off_the_clip_is_skipped(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    photo = jpeg()
    detector = FakeDetector(always(analysis(0.2)))
    async with running_discord_on(s, settings_db, detector, video_enabled=False):
        posted = s.message(channel, s.user("bob"), "look", attachments=[
            s.attachment(CLIP, "clip.mp4", "video/mp4"), s.attachment(photo, "photo.jpg"),
        ])  # fmt: skip
        interaction = await s.menu(s.user(), channel, posted)
        await s.answered(interaction)
    assert detector.seen == [photo]
    assert "clip.mp4" in interaction.followups[0].content
    downloaded = [c.params["path"] for c in s.calls_to("GET /cdn")]
    assert not any(p.endswith("clip.mp4") for p in downloaded)


async def test_autoscan_answers_a_suspicious_clip_posted_in_a_channel(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "images")  # a channel the stand-in guild has
    calm, odd = CLIP + b"calm", CLIP + b"odd"
    answers = {calm: video_analysis([0.1, 0.1]), odd: video_analysis([0.9, 0.95])}
    detector = FakeDetector(lambda data: answers[data])
    async with running_discord_on(s, settings_db, detector) as running:
        mod = s.user("mod")
        switch = await s.slash(mod, channel, "deepfake autoscan",
                               [{"name": "state", "type": 3, "value": "on"}])  # fmt: skip
        await s.wait_until(lambda: switch.callback is not None)
        for data in (calm, odd):
            clip = s.attachment(data, "clip.mp4", "video/mp4")
            await s.user_sends(channel, s.user("poster"), attachments=[clip])
            await s.wait_until(lambda data=data: data in detector.seen)
        await s.wait_until(lambda: detector.in_flight == 0)
        await running.discord.checker.inflight.wait_idle()
    (reply,) = s.sent_to(channel)  # quiet about the calm one
    assert reply.embeds[0]["color"] == COLOURS[Band.FAKE].value
    assert reply.embeds[0]["description"].startswith("Checked 2 frames of a 0.5 s video")
