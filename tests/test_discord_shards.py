"""Two Discord shard processes: ``deepfake-bot run`` twice, with ``DISCORD_SHARD_COUNT=2`` and
``DISCORD_SHARD_IDS=[0]`` / ``[1]``, one real redis-server, one gateway stand-in. Each process
identifies only its own shard, and not before the other's turn is over (the Redis identify
lock, its interval shortened to 1 s); each answers ``/check`` in the servers of its shard; the
per-server settings live in Redis, so what one process reads the other wrote, and a server
handed to the other process's shard brings its settings along."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from .standins.common import bot_process, clean_sigterm_exit, free_port, run_env
from .standins.discord_api import MANAGE_GUILD, DiscordStandIn, Interaction
from .standins.redis_fixtures import redis_url  # noqa: F401 - a fixture

pytest_plugins = ["tests.standins.discord_fixtures"]
pytestmark = pytest.mark.slow

PREFIX = "shards:"
INTERVAL_S = 1.0
IDENTIFY_KEY = f"{PREFIX}discord:identify:0"  # max_concurrency 1: every shard in bucket 0


def _guild_on_each_shard(s: DiscordStandIn) -> tuple[dict[str, Any], dict[str, Any]]:
    """Servers until one sits on shard 0 and one on shard 1 (the stand-in's ids are real
    snowflakes: the shard follows the millisecond they were made)."""
    found: dict[int, dict[str, Any]] = {}
    while len(found) < 2:
        guild = s.add_guild(f"server {len(s.guilds)}")
        found.setdefault((int(guild["id"]) >> 22) % 2, guild)
        time.sleep(0.001)
    return found[0], found[1]


async def _ready(http: aiohttp.ClientSession, port: int) -> None:
    for _ in range(300):
        async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
            if r.status == 200:
                return
        await asyncio.sleep(0.1)
    pytest.fail(f"the process on port {port} never became ready")


async def _hold_identify_turn(redis: Redis, s: DiscordStandIn) -> float:
    """Keep the identify key taken until both processes wait for it (each asked /gateway/bot
    for max_concurrency just before), then let it expire: the time it does."""
    while len([c for c in s.calls_to("GET /gateway/bot") if c.status == 200]) < 2:
        await redis.set(IDENTIFY_KEY, "the test", px=1500)
        await asyncio.sleep(0.3)
    await asyncio.sleep(0.3)  # from the call to the wait
    await redis.set(IDENTIFY_KEY, "the test", px=300)
    return time.monotonic() + 0.3


def _sqlite_files(folder: Path) -> list[Path]:
    return list(folder.rglob("*.sqlite3"))


def _checked(log: Path) -> int:
    return log.read_text(encoding="utf-8", errors="replace").count("checked an image")


async def test_two_shard_processes_share_identify_turns_and_settings(
    discord_standin: DiscordStandIn,
    redis_url: str,  # noqa: F811
    tiny_checkpoint: Path,
    astronaut_jpeg: bytes,
    tmp_path: Path,
) -> None:
    s = discord_standin
    on_0, on_1 = _guild_on_each_shard(s)
    redis = Redis.from_url(redis_url)
    # Set before either process starts: shard 1's process must read it from Redis.
    await redis.hset(f"{PREFIX}discord:guild:{on_1['id']}", "public", "1")
    await redis.set(IDENTIFY_KEY, "the test", px=1500)

    ports = [free_port(), free_port()]
    logs = [tmp_path / "shard0.log", tmp_path / "shard1.log"]

    def env(shard: int) -> dict[str, str]:
        return run_env(
            tiny_checkpoint,
            ports[shard],
            {
                "DISCORD_TOKEN": s.token,
                "DISCORD_API_URL": s.api_url,
                "DISCORD_GATEWAY_URL": s.gateway_url,
                "DISCORD_SHARD_COUNT": "2",
                "DISCORD_SHARD_IDS": f"[{shard}]",
                "DISCORD_SYNC_COMMANDS": "true" if shard == 0 else "false",
                "DISCORD_GUILD_READY_TIMEOUT_S": "0.05",
                "DISCORD_CONNECT_TIMEOUT_S": "120",
                "DISCORD_IDENTIFY_INTERVAL_S": str(INTERVAL_S),
                "DISCORD_SETTINGS_DB": str(tmp_path / f"unused{shard}.sqlite3"),
                "REDIS_URL": redis_url,
                "REDIS_PREFIX": PREFIX,
            },
        )

    try:
        async with (
            bot_process(env(0), tmp_path, logs[0]) as proc0,
            bot_process(env(1), tmp_path, logs[1]) as proc1,
            aiohttp.ClientSession() as http,
        ):
            released = await asyncio.wait_for(_hold_identify_turn(redis, s), 180)
            await s.wait_until(lambda: {0, 1} <= set(s.shards), timeout=60)
            await _ready(http, ports[0])
            await _ready(http, ports[1])

            # Identify turns: nobody before the key expired, then one interval apart.
            (first, t1), (second, t2) = sorted(s.identified_at, key=lambda item: item[1])
            assert {first, second} == {0, 1}
            assert t1 >= released - 0.05, (t1, released)
            assert t2 - t1 >= INTERVAL_S - 0.05, (t1, t2)
            assert sorted(d["shard"] for d in s.identifies) == [[0, 2], [1, 2]]

            # Each process answers in the servers of its own shard.
            user = s.user()

            async def check(guild: dict[str, Any]) -> Interaction:
                image = s.attachment(astronaut_jpeg)
                interaction = await s.check(user, s.channel(guild, "general"), image=image)
                return await s.answered(interaction, timeout=60)

            answer0, answer1 = await check(on_0), await check(on_1)
            assert (_checked(logs[0]), _checked(logs[1])) == (1, 1)
            assert answer0.ephemeral and not answer1.ephemeral  # shard 1 read Redis at start

            # A setting made through shard 0's process goes to Redis; the server, handed to
            # shard 1 (its process), brings it along.
            member = s.user("admin")
            setting = await s.slash(
                member, s.channel(on_0, "general"), "deepfake replies",
                [{"name": "visibility", "type": 3, "value": "public"}],
                member_permissions=MANAGE_GUILD,
            )  # fmt: skip
            await s.wait_until(lambda: setting.callback is not None)
            stored = await redis.hgetall(f"{PREFIX}discord:guild:{on_0['id']}")
            assert stored == {b"public": b"1"}
            await s.hand_over(on_0, 1)
            await asyncio.sleep(1.0)  # the GUILD_CREATE's re-read, one Redis round-trip
            moved = await check(on_0)
            assert not moved.ephemeral
            assert (_checked(logs[0]), _checked(logs[1])) == (1, 2)

            for proc in (proc0, proc1):
                proc.send_signal(signal.SIGTERM)
            rcs = [await asyncio.wait_for(p.wait(), 60) for p in (proc0, proc1)]
    finally:
        await redis.aclose()
    outputs = [clean_sigterm_exit(rc, log, s.token) for rc, log in zip(rcs, logs, strict=True)]
    assert "Shard ID 0 has connected" in outputs[0] and "Shard ID 1" not in outputs[0]
    assert "Shard ID 1 has connected" in outputs[1] and "Shard ID 0" not in outputs[1]
    assert "registered 4 application commands" in outputs[0]
    assert "registered" not in outputs[1]
    assert _sqlite_files(tmp_path) == []  # the settings are in Redis, not in a file
