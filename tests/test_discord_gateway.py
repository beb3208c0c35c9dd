"""The gateway side of the Discord bot: reconnecting and resuming mid-session without losing
events, running sharded (``AutoShardedClient``), a rejected token, and the stand-in's own model
of the Message Content intent (checked with a raw websocket client)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest

from bot.discord_bot.render import COLOURS
from detector.config import Band

from .standins.discord_api import GUILD_MESSAGES, MESSAGE_CONTENT, DiscordStandIn
from .standins.discord_harness import running_discord_on
from .standins.fakes import FakeDetector, always, analysis, jpeg

pytest_plugins = ["tests.standins.discord_fixtures", "tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")


async def test_reconnect_and_resume_mid_session_loses_nothing(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    detector = FakeDetector(always(analysis(0.8)))
    async with running_discord_on(s, settings_db, detector):
        before = await s.answered(await s.check(s.user(), channel, image=s.attachment(jpeg())))
        session = await s.request_reconnect()
        # Sent while the bot is between connections: kept by the gateway and replayed.
        during = await s.check(s.user(), channel, image=s.attachment(jpeg()))
        await s.wait_until(lambda: session.resumes == 1)
        await s.answered(during)
        after = await s.answered(await s.check(s.user(), channel, image=s.attachment(jpeg())))
    assert len(s.identifies) == 1  # resumed, not identified again
    assert [e["t"] for e in session.log].count("RESUMED") == 1
    for interaction in (before, during, after):
        assert interaction.embeds[0]["color"] == COLOURS[Band.FAKE].value
    assert len(detector.seen) == 3


def _guild_on_shard(s: DiscordStandIn, shard: int, count: int) -> dict[str, Any]:
    while True:  # ids carry the time; a few tries find one for each shard
        guild = s.add_guild(f"server on shard {shard}")
        if (int(guild["id"]) >> 22) % count == shard:
            return guild
        del s.guilds[int(guild["id"])]


@pytest.mark.slow  # discord.py waits 5 s between shard identifies, as Discord requires
async def test_auto_sharded_client_serves_every_shard(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    s.recommended_shards = 2
    guilds = [_guild_on_shard(s, shard, 2) for shard in (0, 1)]
    user = s.user()
    detector = FakeDetector(always(analysis(0.1)))
    async with running_discord_on(s, settings_db, detector, discord_shard_count="auto") as running:
        assert isinstance(running.discord.client, discord.AutoShardedClient)
        answered = [
            await s.answered(
                await s.check(user, s.channel(guild, "general"), image=s.attachment(jpeg()))
            )
            for guild in guilds
        ]
        dm = await s.answered(await s.check(user, s.dm_channel(user), image=s.attachment(jpeg())))
    assert s.calls_to("GET /gateway/bot")
    assert sorted(tuple(i["shard"]) for i in s.identifies) == [(0, 2), (1, 2)]
    assert {s.shard_of(int(g["id"])) for g in guilds} == {0, 1}
    for interaction in [*answered, dm]:
        assert interaction.embeds[0]["color"] == COLOURS[Band.REAL].value


@pytest.mark.slow
async def test_fixed_shard_range_connects_only_its_shards(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    detector = FakeDetector(always(analysis(0.1)))
    async with running_discord_on(
        s, settings_db, detector, discord_shard_count=3, discord_shard_ids=[1, 2]
    ):
        pass
    assert sorted(tuple(i["shard"]) for i in s.identifies) == [(1, 3), (2, 3)]
    assert s.calls_to("GET /gateway/bot") == []  # a fixed count uses DISCORD_GATEWAY_URL


async def test_losing_the_gateway_for_good_is_reported_as_fatal(
    discord_standin: DiscordStandIn, settings_db: Path, expect_bot_errors: None
) -> None:
    s = discord_standin
    lost: list[BaseException] = []
    detector = FakeDetector(always(analysis(0.1)))
    async with running_discord_on(s, settings_db, detector, on_fatal=lost.append) as running:
        await s.end_session(code=4004)  # e.g. the token was reset in the Developer Portal
        await s.wait_until(lambda: bool(lost))
        assert not running.discord.running
    (error,) = lost
    assert isinstance(error, discord.ConnectionClosed) and error.code == 4004
    assert len(s.identifies) == 1  # not retried: Discord will not take this session back


async def test_rejected_token_fails_start_up_cleanly(
    discord_standin: DiscordStandIn, settings_db: Path
) -> None:
    s = discord_standin
    detector = FakeDetector(always(analysis(0.1)))
    with pytest.raises(discord.LoginFailure):
        async with running_discord_on(s, settings_db, detector, discord_token="not.the.token"):
            pass  # pragma: no cover - start-up fails
    assert detector.closed  # still closed in order
    assert s.identifies == [] and s.calls_to("PUT /applications/{app_id}/commands") == []


async def _raw_session(
    s: DiscordStandIn, http: aiohttp.ClientSession, intents: int
) -> tuple[aiohttp.ClientWebSocketResponse, Any]:
    ws = await http.ws_connect(f"{s.gateway_url}?v=10&encoding=json&compress=zlib-stream")
    inflate = zlib.decompressobj()

    async def receive() -> dict[str, Any]:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        return json.loads(inflate.decompress(msg.data))  # type: ignore[no-any-return]

    assert (await receive())["op"] == 10  # HELLO
    await ws.send_json({"op": 2, "d": {"token": s.token, "intents": intents, "properties": {}}})
    return ws, receive


async def test_standin_models_the_message_content_intent(discord_standin: DiscordStandIn) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    async with aiohttp.ClientSession() as http:
        # Without the privileged intent: server messages arrive, but blank, unless they
        # mention the bot.
        ws, receive = await _raw_session(s, http, GUILD_MESSAGES)
        assert (await receive())["t"] == "READY"
        assert (await receive())["t"] == "GUILD_CREATE"
        await s.user_sends(channel, s.user(), "hidden", attachments=[s.attachment(jpeg())])
        blank = (await receive())["d"]
        assert (blank["content"], blank["attachments"]) == ("", [])
        await s.user_sends(
            channel, s.user(), "hey bot", attachments=[s.attachment(jpeg())], mentions=[s.bot_user]
        )
        mentioned = (await receive())["d"]
        assert mentioned["content"] == "hey bot" and len(mentioned["attachments"]) == 1
        await ws.close()

        # Asking for it while the application does not have it: closed with 4014.
        s.message_content_allowed = False
        ws, receive = await _raw_session(s, http, GUILD_MESSAGES | MESSAGE_CONTENT)
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4014
    assert s.closed_with == [4014]
