"""The Discord adapter with its per-server settings in Redis (``REDIS_URL``) when Redis goes
away while it runs: the real adapter against the Discord stand-in and a real redis-server that
the test stops mid-test (connections are then refused, at once and every time).

- An admin's ``/deepfake`` change is answered, privately, with the store's words for "not
  saved, try again" (never the cause), a WARNING names the cause, and nothing changes: the
  settings read before stay in force.
- A server arriving again (GUILD_CREATE, as after an outage or a reconnect) re-reads its
  settings; with Redis gone that is a WARNING and the settings read before stay in use.
- Either way the shard keeps serving: auto-scan and ``/check`` still get verdicts (the rate
  limits, also in Redis, fail open).
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import SecretStr

from bot.discord_bot import texts
from bot.discord_bot.render import COLOURS
from bot.discord_bot.store import AutoscanAction, GuildSettings, SettingsUnavailable
from bot.redis_client import connect
from detector.config import Band

from .standins.discord_api import MANAGE_GUILD, DiscordStandIn, Interaction
from .standins.discord_harness import discord_settings, running_discord
from .standins.fakes import FakeDetector, analysis, jpeg
from .standins.redis_server import redis_server

pytest_plugins = ["tests.standins.discord_fixtures", "tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")

SEND = "POST /channels/{channel_id}/messages"
NOT_SAVED = str(SettingsUnavailable("unused"))
REPLY = 4  # an interaction callback with a message


class StoppableRedis:
    """A redis-server of this test alone, which the test can stop."""

    def __init__(self, workdir: Path) -> None:
        self._stack = ExitStack()
        self.url = self._stack.enter_context(redis_server(workdir))

    def stop(self) -> None:
        self._stack.close()


@pytest.fixture()
def redis_dir(tmp_path: Path) -> Path:
    path = tmp_path / "redis"
    path.mkdir()
    return path


async def _admin(
    s: DiscordStandIn, channel: dict[str, Any], sub: str, **options: Any
) -> Interaction:
    """``/deepfake sub`` by a member with Manage Server, once answered."""
    kinds = {str: 3, int: 4}
    opts = [{"name": k, "type": kinds[type(v)], "value": v} for k, v in options.items()]
    interaction = await s.slash(
        s.user("admin"), channel, f"deepfake {sub}", opts, member_permissions=MANAGE_GUILD
    )
    await s.wait_until(lambda: interaction.callback is not None)
    return interaction


def _exists(path: Path) -> bool:
    return path.exists()


def _warnings(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.get_records("call")
        if r.name == logger and r.levelno == logging.WARNING
    ]


async def test_a_settings_change_with_redis_gone_is_refused_safely_and_the_bot_keeps_serving(
    discord_standin: DiscordStandIn,
    settings_db: Path,
    redis_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = discord_standin
    guild = s.add_guild()
    guild_id = int(guild["id"])
    images, general = s.channel(guild, "images"), s.channel(guild, "general")
    detector = FakeDetector(lambda data: analysis(0.9))
    server = StoppableRedis(redis_dir)
    shared = await connect(SecretStr(server.url), "unavailable:")
    try:
        async with running_discord(discord_settings(s, settings_db), detector, redis=shared) as r:
            # While Redis is up: a change is saved, and answered as usual.
            on = await _admin(s, images, "autoscan", state="on", action="react")
            assert "Auto-scan is **on**" in on.texts
            before = GuildSettings(
                autoscan_channels=frozenset({int(images["id"])}),
                autoscan_action=AutoscanAction.REACT,
            )
            assert r.discord.store.get(guild_id) == before
            stored = await shared.client.hgetall(f"unavailable:discord:guild:{guild_id}")
            assert stored == {f"channel:{images['id']}".encode(): b"1", b"action": b"react"}

            server.stop()  # Redis goes away; the bot is not told

            caplog.set_level(logging.WARNING)
            answers = [
                await _admin(s, images, "threshold", percent=80),  # a field of the hash
                await _admin(s, images, "autoscan", state="off"),  # a channel switch
                await _admin(s, general, "autoscan", state="on", action="reply"),  # two writes
                await _admin(s, general, "replies", visibility="public"),
            ]
            for answer in answers:
                assert answer.callback_type == REPLY and answer.ephemeral  # only the admin
                assert answer.texts == NOT_SAVED
                assert "Redis" not in answer.texts and "127.0.0.1" not in answer.texts
            assert r.discord.store.get(guild_id) == before  # nothing changed
            status = await _admin(s, general, "status")  # reads this process's copy
            assert f"**Auto-scan:** <#{images['id']}>" in status.texts
            assert "(the model's default)" in status.texts
            assert f"**/check answers:** {texts.REPLIES_WORDS[False]}" in status.texts
            assert f"**Auto-scan action:** {texts.ACTION_WORDS['react']}" in status.texts

            logged = _warnings(caplog, "bot.discord_bot.commands")
            assert logged == [
                f"the Discord command {name!r} could not save: Redis: ConnectionError"
                for name in (
                    "deepfake threshold",
                    "deepfake autoscan",
                    "deepfake autoscan",
                    "deepfake replies",
                )
            ]

            # The bot keeps working: auto-scan (still on, as before) and /check.
            poster, image = s.user("poster"), s.attachment(jpeg())
            posted = await s.user_sends(images, poster, attachments=[image])
            await s.wait_until(lambda: [m for _, m, _ in s.reactions] == [int(posted["id"])])
            assert s.sent_to(images) == []  # react, as set before Redis went away
            check = await s.answered(await s.check(s.user(), general, image=s.attachment(jpeg())))
            assert check.embeds[0]["color"] == COLOURS[Band.FAKE].value
            assert check.ephemeral  # the public-answers change was not made either
            assert "rate limit not enforced" in caplog.text  # Redis also held the limits
    finally:
        server.stop()
        await shared.close()
    assert len(detector.seen) == 2
    assert not _exists(settings_db)  # the settings were in Redis, not in the SQLite file


async def test_a_server_arriving_while_redis_is_gone_keeps_the_settings_read_before(
    discord_standin: DiscordStandIn,
    settings_db: Path,
    redis_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = discord_standin
    guild = s.add_guild()
    guild_id = int(guild["id"])
    images = s.channel(guild, "images")
    detector = FakeDetector(lambda data: analysis(0.9))
    server = StoppableRedis(redis_dir)
    shared = await connect(SecretStr(server.url), "arriving:")
    await shared.client.hset(f"arriving:discord:guild:{guild_id}", f"channel:{images['id']}", "1")
    try:
        async with running_discord(discord_settings(s, settings_db), detector, redis=shared) as r:
            assert r.discord.store.autoscan_on(guild_id, int(images["id"]))  # read at start
            server.stop()
            caplog.set_level(logging.WARNING)

            await s.hand_over(guild, 0)  # GUILD_CREATE again: the server is available (again)
            await s.wait_until(lambda: bool(_warnings(caplog, "bot.discord_bot.listener")))
            assert _warnings(caplog, "bot.discord_bot.listener") == [
                "could not re-read a server's settings: Redis: ConnectionError"
            ]
            assert r.discord.store.autoscan_on(guild_id, int(images["id"]))  # still in use
            assert r.discord.running and s.shards[0].connection is not None

            await s.user_sends(images, s.user("poster"), attachments=[s.attachment(jpeg())])
            reply = await s.wait_for(SEND)
            assert reply.status == 200 and reply.params["channel_id"] == images["id"]
    finally:
        server.stop()
        await shared.close()
    assert len(detector.seen) == 1


def _redis_process(url: str) -> psutil.Process:
    port = url.rsplit(":", 1)[1].split("/")[0]
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])  # redis-server retitles itself "... HOST:PORT"
        if "redis-server" in cmd and (f":{port}" in cmd or f"--port {port}" in cmd):
            return proc
    raise AssertionError(f"no redis-server on port {port}")


async def test_a_hung_redis_still_lets_the_admin_hear_back_within_discords_deadline(
    discord_standin: DiscordStandIn,
    settings_db: Path,
    redis_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis that hangs (paused, not gone) costs each command its timeout, not its answer:
    the timeout stays below the 3 s Discord allows for the first response, so the admin gets the
    "not saved" words instead of "the application did not respond"."""
    s = discord_standin
    guild = s.add_guild()
    images = s.channel(guild, "images")
    server = StoppableRedis(redis_dir)
    shared = await connect(SecretStr(server.url), "hung:")
    kwargs = shared.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] < 3.0 and kwargs["socket_connect_timeout"] < 3.0
    proc = _redis_process(server.url)
    try:
        detector = FakeDetector(lambda data: analysis(0.9))
        async with running_discord(discord_settings(s, settings_db), detector, redis=shared):
            proc.suspend()  # SIGSTOP: connections stay open, nothing answers
            caplog.set_level(logging.WARNING)
            answer = await _admin(s, images, "threshold", percent=80)
            assert answer.callback_type == REPLY and answer.ephemeral
            assert answer.texts == NOT_SAVED
            assert _warnings(caplog, "bot.discord_bot.commands") == [
                "the Discord command 'deepfake threshold' could not save: Redis: TimeoutError"
            ]
    finally:
        proc.resume()
        server.stop()
        await shared.close()
