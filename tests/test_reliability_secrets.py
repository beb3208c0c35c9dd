"""Secrets never reach the logs (issue 16): the real ``deepfake-bot run`` as a subprocess with
every platform at once (Telegram, Discord, the web API behind a bearer token), at DEBUG level,
in both log formats, answering a check on each platform and a refused API call; afterwards
every line of its output is searched for each secret: the Telegram token (and its secret half
alone), the Discord token and the API token."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from .standins.common import bot_process, clean_sigterm_exit, free_port, run_env
from .standins.discord_api import DiscordStandIn
from .standins.telegram_api import TelegramStandIn

pytest_plugins = ["tests.standins.discord_fixtures", "tests.standins.telegram_fixtures"]
pytestmark = [pytest.mark.usefixtures("no_bot_errors"), pytest.mark.slow]

API_TOKEN = "api-secret-7f3c9a1e5b2d4c6a8e0f"


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_full_run_logs_no_secret(
    standin: TelegramStandIn,
    discord_standin: DiscordStandIn,
    tiny_checkpoint: Path,
    astronaut_jpeg: bytes,
    tmp_path: Path,
    log_format: str,
) -> None:
    d = discord_standin
    channel = d.channel(d.add_guild(), "general")
    http_port = free_port()
    env = run_env(
        tiny_checkpoint,
        http_port,
        {
            "TELEGRAM_TOKEN": standin.token,
            "TELEGRAM_API_URL": f"{standin.origin}/bot",
            "TELEGRAM_FILE_URL": f"{standin.origin}/file/bot",
            "TELEGRAM_POLL_TIMEOUT_S": "5",
            "DISCORD_TOKEN": d.token,
            "DISCORD_API_URL": d.api_url,
            "DISCORD_GATEWAY_URL": d.gateway_url,
            "HTTP_API_TOKEN": API_TOKEN,
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": log_format,
        },
    )
    log = tmp_path / "run.log"
    async with bot_process(env, tmp_path, log) as proc:
        await standin.wait_for("getUpdates", timeout=120)
        await d.wait_until(lambda: bool(d.shards), timeout=120)
        base = f"http://127.0.0.1:{http_port}"
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                async with http.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("never ready")
            auth = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "image/jpeg"}
            async with http.post(f"{base}/v1/check", data=astronaut_jpeg, headers=auth) as r:
                assert r.status == 200
            wrong = {"Authorization": f"Bearer {API_TOKEN[:-1]}x", "Content-Type": "image/jpeg"}
            async with http.post(f"{base}/v1/check", data=astronaut_jpeg, headers=wrong) as r:
                assert r.status == 401

        user = standin.user()
        chat = standin.private_chat(user)
        photo = standin.photo_sizes(standin.add_file(astronaut_jpeg))
        msg = standin.message(chat, user, photo=photo)
        await standin.push_update({"message": msg})
        await standin.wait_for("sendPhoto", timeout=60)
        interaction = await d.check(d.user(), channel, image=d.attachment(astronaut_jpeg))
        await d.answered(interaction, timeout=60)

        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 90)
    output = clean_sigterm_exit(rc, log, standin.token)
    assert len(output.splitlines()) > 20, "DEBUG logging was on: the run said something"
    secrets = {
        "telegram token": standin.token,
        "telegram token's secret half": standin.token.split(":")[1],
        "discord token": d.token,
        "api token": API_TOKEN,
        "api token's tail": API_TOKEN[-12:],
    }
    for what, secret in secrets.items():
        leaked = [line for line in output.splitlines() if secret in line]
        assert not leaked, f"{what} in the log: {leaked[:3]}"
