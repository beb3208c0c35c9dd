"""The real entry point, ``deepfake-bot run``, as a subprocess configured only by environment
variables: it serves Telegram (polling the stand-in) with the real detector, answers health
checks, and on SIGTERM stops taking updates but still sends the reply for the check in flight,
then exits 0. Its log has no ERROR and never contains the token."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from .standins.common import bot_process, clean_env, clean_sigterm_exit, free_port, run_env
from .standins.telegram_api import TelegramStandIn

# The stand-in fixtures; every test here also fails on an ERROR log from the bot.
pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = [pytest.mark.usefixtures("no_bot_errors"), pytest.mark.slow]


async def test_run_serves_and_finishes_in_flight_reply_on_sigterm(
    standin: TelegramStandIn, tiny_checkpoint: Path, astronaut_jpeg: bytes, tmp_path: Path
) -> None:
    http_port = free_port()
    env = run_env(
        tiny_checkpoint,
        http_port,
        {
            "TELEGRAM_TOKEN": standin.token,
            "TELEGRAM_API_URL": f"{standin.origin}/bot",
            "TELEGRAM_FILE_URL": f"{standin.origin}/file/bot",
            "TELEGRAM_POLL_TIMEOUT_S": "5",
            "LOG_LEVEL": "INFO",
        },
    )
    log = tmp_path / "run.log"
    async with bot_process(env, tmp_path, log) as proc:
        await standin.wait_for("getUpdates", timeout=120)
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/readyz"):
                async with http.get(f"http://127.0.0.1:{http_port}{path}") as r:
                    assert r.status == 200, path

        # A photo whose download trickles in for about two seconds: SIGTERM arrives mid-way.
        user = standin.user()
        chat = standin.private_chat(user)
        slow = standin.add_file(astronaut_jpeg, chunk_size=4096, chunk_delay_s=0.1)
        msg = standin.message(chat, user, photo=standin.photo_sizes(slow))
        await standin.push_update({"message": msg})
        await standin.wait_for("download", timeout=30)
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 90)
    output = clean_sigterm_exit(rc, log, standin.token)
    replies = standin.replies_to(chat["id"], msg["message_id"])
    assert [c.method for c in replies] == ["sendPhoto"], output
    assert "probability of a face manipulation" in replies[0].text
    assert standin.token.split(":")[1] not in output
    # After the reply, polling confirmed the update so it is not delivered again on restart.
    last_poll = standin.calls_to("getUpdates")[-1]
    assert int(last_poll.params["offset"]) > 0


async def test_run_without_a_token_or_web_says_so_and_exits(tmp_path: Path) -> None:
    log = tmp_path / "run.log"  # (with the web front on, it serves alone: test_web_run.py)
    async with bot_process({**clean_env(), "HTTP_ENABLED": "false"}, tmp_path, log) as proc:
        rc = await asyncio.wait_for(proc.wait(), 60)
    output = log.read_text(encoding="utf-8")
    assert rc == 2
    assert "nothing to serve: set TELEGRAM_TOKEN and/or DISCORD_TOKEN" in output
