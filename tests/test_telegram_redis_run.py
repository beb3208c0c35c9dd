"""``deepfake-bot run`` with ``REDIS_URL``, as a subprocess: it says it keeps its shared state in
Redis, answers a webhook update and records it there as answered, and stops cleanly; with Redis
unreachable it refuses to start (exit 2) without printing the URL, which may hold a password."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from .standins.common import bot_process, clean_sigterm_exit, free_port, run_env
from .standins.redis_fixtures import redis_url
from .standins.telegram_api import TelegramStandIn

pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = [pytest.mark.usefixtures("no_bot_errors"), pytest.mark.slow]
__all__ = ["redis_url"]  # the fixture, imported for pytest

SECRET = "run-secret_token"


def telegram_env(standin: TelegramStandIn, hook_port: int) -> dict[str, str]:
    return {
        "TELEGRAM_TOKEN": standin.token,
        "TELEGRAM_API_URL": f"{standin.origin}/bot",
        "TELEGRAM_FILE_URL": f"{standin.origin}/file/bot",
        "TELEGRAM_MODE": "webhook",
        "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{hook_port}/hook",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
        "TELEGRAM_WEBHOOK_PORT": str(hook_port),
        "WEB_ENABLED": "false",
        "LOG_LEVEL": "INFO",
    }


async def test_run_shares_its_state_in_redis(
    standin: TelegramStandIn,
    redis_url: str,
    tiny_checkpoint: Path,
    astronaut_jpeg: bytes,
    tmp_path: Path,
) -> None:
    env = run_env(tiny_checkpoint, free_port(), telegram_env(standin, free_port()))
    env |= {"REDIS_URL": redis_url, "REDIS_PREFIX": "run-test:"}
    log = tmp_path / "run.log"
    async with bot_process(env, tmp_path, log) as proc:
        await standin.wait_for("setWebhook", timeout=120)
        user = standin.user()
        chat = standin.private_chat(user)
        photo = standin.photo_sizes(standin.add_file(astronaut_jpeg))
        msg = standin.message(chat, user, photo=photo)
        update = await standin.push_update({"message": msg})
        await standin.wait_for("sendPhoto", timeout=60)
        redis = Redis.from_url(redis_url)
        try:
            bot_id = standin.token.partition(":")[0]
            key = f"run-test:telegram:{bot_id}:update:{update['update_id']}"
            async with asyncio.timeout(10):
                while await redis.get(key) != b"done":
                    await asyncio.sleep(0.05)
        finally:
            await redis.aclose()
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 60)
    output = clean_sigterm_exit(rc, log, standin.token)
    assert "shared state in Redis (keys under 'run-test:')" in output
    assert redis_url not in output
    assert len(standin.replies_to(chat["id"], msg["message_id"])) == 1


async def test_run_refuses_to_start_without_its_redis(
    standin: TelegramStandIn, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    url = f"redis://:hunter2-password@127.0.0.1:{free_port()}/0"  # nothing listens there
    env = run_env(tiny_checkpoint, free_port(), telegram_env(standin, free_port()))
    env["REDIS_URL"] = url
    log = tmp_path / "run.log"
    async with bot_process(env, tmp_path, log) as proc:
        rc = await asyncio.wait_for(proc.wait(), 120)
    output = log.read_text(encoding="utf-8", errors="replace")
    assert rc == 2, output
    assert "cannot reach Redis at REDIS_URL: ConnectionError" in output
    assert "hunter2" not in output
    assert standin.calls_to("getMe") == []  # refused before touching Telegram
