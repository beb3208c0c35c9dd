"""``/check`` and the "Check for deepfake" message menu, end to end: the real discord.py client
and adapter against the Discord stand-in over loopback sockets, with a scripted detector.

Each answer is read back from what the stand-in received: the interaction callback (a defer,
private unless the server chose public answers), then follow-ups with colour-coded embeds and
the annotated images they show."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core.errors import FileTooLarge, UrlRefused
from bot.discord_bot import texts
from bot.discord_bot.render import COLOURS, NO_VERDICT
from detector.config import Band
from detector.errors import NoFaceFound

from .standins.discord_api import DiscordStandIn
from .standins.discord_harness import running_discord_on
from .standins.fakes import ANNOTATED, FakeDetector, always, analysis, jpeg

pytest_plugins = ["tests.standins.discord_fixtures", "tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")

DEFER = 5


def _file_bytes(call_files: dict[str, tuple[str, bytes]], name: str) -> bytes:
    matches = [data for filename, data in call_files.values() if filename == name]
    assert len(matches) == 1, f"{name} uploaded {len(matches)} times"
    return matches[0]


async def test_commands_are_registered_as_discord_shows_them(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    async with running_discord_on(s, settings_db, FakeDetector(always(analysis(0.1)))):
        pass
    (sync,) = s.calls_to("PUT /applications/{app_id}/commands")
    commands = {c["name"]: c for c in sync.body}
    assert set(commands) == {"check", "about", "deepfake", texts.MENU_NAME}
    check = commands["check"]
    assert [(o["name"], o["type"], o["required"]) for o in check["options"]] == [
        ("image", 11, False),  # 11 = attachment
        ("url", 3, False),
    ]
    assert check["contexts"] == [0, 1]  # servers and the bot's DMs
    assert check["default_member_permissions"] is None  # for everyone
    assert commands[texts.MENU_NAME]["type"] == 3  # a message context menu
    admin = commands["deepfake"]
    assert admin["contexts"] == [0] and admin["dm_permission"] is False  # servers only
    assert int(admin["default_member_permissions"]) == 1 << 5  # Manage Server
    assert {o["name"] for o in admin["options"]} == {"autoscan", "threshold", "replies", "status"}


async def test_test_guild_gets_the_commands_instantly_instead_of_everyone(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    guild = s.add_guild()
    detector = FakeDetector(always(analysis(0.1)))
    async with running_discord_on(s, settings_db, detector, discord_test_guild=int(guild["id"])):
        answered = await s.answered(
            await s.check(s.user(), s.channel(guild, "general"), image=s.attachment(jpeg()))
        )
    (sync,) = s.calls_to("PUT /applications/{app_id}/guilds/{guild_id}/commands")
    assert sync.params["guild_id"] == guild["id"]
    assert {c["name"] for c in sync.body} == {"check", "about", "deepfake", texts.MENU_NAME}
    assert s.calls_to("PUT /applications/{app_id}/commands") == []
    assert answered.embeds[0]["color"] == COLOURS[Band.REAL].value


async def test_slash_check_defers_then_follows_up_with_an_embed_and_the_annotated_image(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    detector = FakeDetector(always(analysis(0.12, 0.93)))
    image = jpeg()
    async with running_discord_on(s, settings_db, detector):
        interaction = await s.check(s.user(), channel, image=s.attachment(image, "suspect.jpg"))
        await s.answered(interaction)

    assert interaction.callback is not None and interaction.callback_type == DEFER
    assert interaction.ephemeral  # private by default
    download = next(c for c in s.calls_to("GET /cdn"))
    assert interaction.callback.at <= download.at  # acknowledged before any work
    assert detector.seen == [image]
    (followup,) = interaction.followups
    (embed,) = followup.embeds
    assert embed["color"] == COLOURS[Band.FAKE].value
    assert embed["title"] == "🟥 Likely manipulated — 93% probability of a face manipulation"
    assert embed["author"]["name"] == "suspect.jpg"
    assert [(f["name"], f["value"]) for f in embed["fields"]] == [
        ("Face 1 (left)", "🟩 12%"),
        ("Face 2 (right)", "🟥 93%"),
    ]
    assert "2 faces found" in embed["description"]
    assert "can be wrong" in embed["description"]
    assert embed["image"]["url"] == "attachment://annotated-1.jpg"
    assert _file_bytes(followup.files, "annotated-1.jpg") == ANNOTATED
    assert embed["footer"]["text"].startswith("fake detector (tests) · checked in ")


async def test_public_answers_when_the_server_chooses_them(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    user = s.user()
    async with running_discord_on(s, settings_db, FakeDetector(always(analysis(0.5)))):
        setting = await s.slash(
            user,
            channel,
            "deepfake replies",
            [{"name": "visibility", "type": 3, "value": "public"}],
        )
        await s.wait_until(lambda: setting.callback is not None)
        interaction = await s.check(user, channel, image=s.attachment(jpeg()))
        await s.answered(interaction)
    assert "public" in setting.texts and setting.ephemeral  # admin answers stay private
    assert interaction.callback_type == DEFER and not interaction.ephemeral
    assert interaction.embeds[0]["color"] == COLOURS[Band.UNCERTAIN].value


async def test_message_menu_checks_each_image_and_skips_the_text_file(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    guild = s.add_guild()
    channel = s.channel(guild, "general")
    first, second = jpeg(colour=(250, 0, 0)), jpeg(colour=(0, 0, 250))
    scores = {first: analysis(0.05), second: analysis(0.81)}
    detector = FakeDetector(lambda data: scores[data])
    async with running_discord_on(s, settings_db, detector):
        posted = s.message(
            channel,
            s.user("bob"),
            "look at these",
            attachments=[
                s.attachment(first, "one.jpg"),
                s.attachment(b"just some notes\n", "notes.txt", "text/plain; charset=utf-8"),
                s.attachment(second, "two.png", "image/png"),
            ],
        )
        interaction = await s.menu(s.user(), channel, posted)
        await s.answered(interaction)

    assert sorted(detector.seen) == sorted([first, second])
    downloaded = [c.params["path"] for c in s.calls_to("GET /cdn")]
    assert not any(p.endswith("notes.txt") for p in downloaded)  # never fetched
    (followup,) = interaction.followups
    jump = f"https://discord.com/channels/{guild['id']}/{channel['id']}/{posted['id']}"
    assert followup.content.startswith(f"Checked 2 images from {jump}")
    assert "notes.txt" in followup.content
    one, two = followup.embeds
    assert (one["author"]["name"], one["color"]) == ("one.jpg", COLOURS[Band.REAL].value)
    assert (two["author"]["name"], two["color"]) == ("two.png", COLOURS[Band.FAKE].value)
    assert one["url"] == two["url"] == jump
    assert {one["image"]["url"], two["image"]["url"]} == {
        "attachment://annotated-1.jpg",
        "attachment://annotated-2.jpg",
    }
    assert sorted(name for name, _ in followup.files.values()) == [
        "annotated-1.jpg",
        "annotated-2.jpg",
    ]


async def test_message_menu_checks_an_image_link_preview_through_the_media_proxy(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    picture = jpeg(colour=(9, 9, 9))
    detector = FakeDetector(always(analysis(0.75)))
    async with running_discord_on(s, settings_db, detector):
        posted = s.message(
            channel,
            s.user("bob"),
            "https://images.example.org/portrait.jpg",
            embeds=[s.image_embed(picture)],
        )
        interaction = await s.menu(s.user(), channel, posted)
        await s.answered(interaction)
    assert detector.seen == [picture]
    (download,) = s.calls_to("GET /cdn")
    assert s.cdn[download.params["path"]].data == picture  # the proxied copy, not the site
    (embed,) = interaction.embeds
    assert embed["author"]["name"] == "portrait.jpg (images.example.org)"


async def test_message_menu_on_a_message_without_images_says_so(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    detector = FakeDetector(always(analysis(0.5)))
    async with running_discord_on(s, settings_db, detector):
        posted = s.message(channel, s.user("bob"), "no pictures here")
        interaction = await s.menu(s.user(), channel, posted)
        await s.wait_until(lambda: interaction.callback is not None)
    assert interaction.callback_type == 4 and interaction.ephemeral
    assert interaction.texts == texts.MENU_NOTHING
    assert detector.seen == []


@pytest.mark.parametrize(
    ("script", "title", "message"),
    [
        (NoFaceFound("none"), "No face found", NoFaceFound.user_message),
        (
            RuntimeError("model exploded"),
            "Something went wrong",
            "Sorry, something went wrong on my side",
        ),
    ],
    ids=["no-face", "unexpected-error"],
)
async def test_refusals_are_grey_embeds_with_the_cores_words(
    discord_standin: DiscordStandIn,
    settings_db: Path,
    script: BaseException,
    title: str,
    message: str,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    if isinstance(script, RuntimeError):  # logged with its traceback, on purpose
        request.getfixturevalue("expect_bot_errors")
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    async with running_discord_on(s, settings_db, FakeDetector(always(script))):
        interaction = await s.check(s.user(), channel, image=s.attachment(jpeg()))
        await s.answered(interaction)
    (embed,) = interaction.embeds
    assert embed["color"] == NO_VERDICT.value
    assert embed["title"] == title
    assert embed["description"].startswith(message)
    assert "image" not in embed and not interaction.followups[0].files
    assert "%" not in embed["description"]  # a failure is never a score
    if isinstance(script, RuntimeError):
        assert any("model exploded" in str(r.exc_info) for r in caplog.records if r.exc_info)


async def test_oversized_attachment_is_refused_without_downloading_it(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    detector = FakeDetector(always(analysis(0.5)))
    async with running_discord_on(s, settings_db, detector, max_image_bytes=5 * 1024 * 1024):
        big = s.attachment(jpeg(), "huge.jpg", size=31 * 1024 * 1024)  # what Discord declares
        interaction = await s.check(s.user(), channel, image=big)
        await s.answered(interaction)
    (embed,) = interaction.embeds
    assert embed["title"] == "File too large"
    assert embed["description"] == FileTooLarge(31 * 1024 * 1024, 5 * 1024 * 1024).user_message
    assert s.calls_to("GET /cdn") == [] and detector.seen == []


async def test_busy_detector_answers_busy_at_once(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    detector = FakeDetector(always(analysis(0.2)))
    detector.hold.clear()
    async with running_discord_on(
        s, settings_db, detector, max_concurrent_checks=1, check_queue_size=0
    ):
        first = await s.check(s.user("ann"), channel, image=s.attachment(jpeg()))
        await asyncio.wait_for(detector.entered.wait(), 10)
        second = await s.check(s.user("ben"), channel, image=s.attachment(jpeg()))
        await s.answered(second)
        assert first.followups == []  # still running
        detector.hold.set()
        await s.answered(first)
    assert second.embeds[0]["title"] == "Busy right now"
    assert "busy" in second.embeds[0]["description"].lower()
    assert first.embeds[0]["color"] == COLOURS[Band.REAL].value
    assert len(detector.seen) == 1


async def test_rate_limit_per_user(discord_standin: DiscordStandIn, settings_db: Path) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    user = s.user()
    detector = FakeDetector(always(analysis(0.2)))
    async with running_discord_on(s, settings_db, detector, rate_limit_per_minute=1):
        first = await s.answered(await s.check(user, channel, image=s.attachment(jpeg())))
        second = await s.answered(await s.check(user, channel, image=s.attachment(jpeg())))
        other = await s.answered(await s.check(s.user("zoe"), channel, image=s.attachment(jpeg())))
    assert first.embeds[0]["color"] == COLOURS[Band.REAL].value
    assert second.embeds[0]["title"] == "Slow down"
    assert "1 checks per minute" in second.embeds[0]["description"]
    assert other.embeds[0]["color"] == COLOURS[Band.REAL].value  # per user
    assert len(detector.seen) == 2


async def test_check_without_an_image_or_link_explains_itself(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    async with running_discord_on(s, settings_db, FakeDetector(always(analysis(0.2)))):
        interaction = await s.check(s.user(), channel)
        await s.wait_until(lambda: interaction.callback is not None)
    assert interaction.callback_type == 4 and interaction.ephemeral
    assert interaction.texts == texts.CHECK_NOTHING


async def test_url_option_fetches_a_link(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    picture = jpeg(colour=(1, 2, 3))
    link = s.store_cdn(picture, "holiday.jpg", "image/jpeg")
    detector = FakeDetector(always(analysis(0.71)))
    async with running_discord_on(s, settings_db, detector):
        interaction = await s.answered(await s.check(s.user(), channel, url=link))
    assert detector.seen == [picture]
    (embed,) = interaction.embeds
    assert embed["color"] == COLOURS[Band.FAKE].value
    assert embed["author"]["name"] == "holiday.jpg (127.0.0.1)"


@pytest.mark.parametrize(
    "link",
    [
        "http://127.0.0.1:{port}/cdn/secret.jpg",  # loopback (the stand-in itself)
        "http://10.1.2.3/admin.jpg",  # private network
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[::ffff:127.0.0.1]/x.jpg",  # loopback in IPv6 clothing
        "file:///etc/passwd",
    ],
)
async def test_url_option_refuses_non_public_addresses(
    discord_standin: DiscordStandIn, settings_db: Path, link: str
) -> None:
    from bot.core.urlfetch import AddressPolicy

    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    detector = FakeDetector(always(analysis(0.71)))
    # The production policy, not the tests' loopback allowance.
    async with running_discord_on(s, settings_db, detector, policy=AddressPolicy()):
        url = link.format(port=s.port)
        interaction = await s.answered(await s.check(s.user(), channel, url=url))
    (embed,) = interaction.embeds
    assert embed["title"] == "Link refused"
    assert embed["description"] == UrlRefused.user_message
    assert s.calls_to("GET /cdn") == [] and detector.seen == []


async def test_slash_check_in_a_direct_message(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    user = s.user()
    dm = s.dm_channel(user)
    async with running_discord_on(s, settings_db, FakeDetector(always(analysis(0.4)))):
        interaction = await s.answered(await s.check(user, dm, image=s.attachment(jpeg())))
    assert interaction.callback_type == DEFER and not interaction.ephemeral
    assert interaction.embeds[0]["color"] == COLOURS[Band.UNCERTAIN].value


async def test_about_describes_the_model(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    async with running_discord_on(s, settings_db, FakeDetector(always(analysis(0.4)))):
        interaction = await s.slash(s.user(), channel, "about")
        await s.wait_until(lambda: interaction.callback is not None)
    assert "Model: fake detector (tests)" in interaction.texts
    assert "70% and above: Likely manipulated" in interaction.texts
