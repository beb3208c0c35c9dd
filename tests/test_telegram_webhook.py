"""Webhook mode against the stand-in: the bot registers its URL and secret token with
``setWebhook``, accepts only POSTs carrying that token, and never polls. Plus the polling side
of the same switch: a leftover webhook is removed before polling starts (Telegram answers 409
to ``getUpdates`` while one is set)."""

from __future__ import annotations

import aiohttp
import pytest

from .standins.common import free_port
from .standins.fakes import FakeDetector, always, analysis, jpeg
from .standins.telegram_api import TelegramStandIn
from .standins.telegram_harness import running_bot_on

# The stand-in fixtures; every test here also fails on an ERROR log from the bot.
pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")

SECRET = "s3cret-Token_for-tests"


async def test_webhook_mode_with_secret_token(standin: TelegramStandIn) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    detector = FakeDetector(always(analysis(0.88)))
    async with running_bot_on(
        standin,
        detector,
        telegram_mode="webhook",
        telegram_webhook_url=url,
        telegram_webhook_secret=SECRET,
        telegram_webhook_listen="127.0.0.1",
        telegram_webhook_port=port,
    ):
        registered = await standin.wait_for("setWebhook")
        assert registered.params["url"] == url
        assert registered.params["secret_token"] == SECRET
        assert registered.json("allowed_updates") == ["message"]

        user = standin.user()
        chat = standin.private_chat(user)
        # A POST without the secret is refused and not processed.
        forged = standin.message(chat, user, photo=standin.photo_sizes(standin.add_file(jpeg())))
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json={"update_id": 99, "message": forged}) as r:
                assert r.status == 403
            headers = {"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            async with session.post(url, json={"update_id": 98}, headers=headers) as r:
                assert r.status == 403

        msg = standin.message(chat, user, photo=standin.photo_sizes(standin.add_file(jpeg())))
        await standin.push_update({"message": msg})
        sent = await standin.wait_for("sendPhoto")
    assert standin.webhook_deliveries == [200]
    assert sent.reply_to == msg["message_id"]
    assert sent.text.startswith("🟥 Likely manipulated — 88%")
    assert len(detector.seen) == 1
    assert standin.calls_to("getUpdates") == []
    assert standin.webhook is not None  # left registered: Telegram queues updates meanwhile


async def test_polling_removes_a_leftover_webhook_first(standin: TelegramStandIn) -> None:
    standin.webhook = {"url": "https://old.example/hook", "secret_token": None}
    probe = f"{standin.api_url}{standin.token}/getUpdates"
    async with aiohttp.ClientSession() as session, session.post(probe) as r:
        assert r.status == 409
        assert (await r.json())["error_code"] == 409
    detector = FakeDetector(always(analysis(0.2)))
    async with running_bot_on(standin, detector):
        user = standin.user()
        msg = standin.message(standin.private_chat(user), user, text="hi")
        await standin.push_update({"message": msg})
        await standin.wait_for("sendMessage")
    methods = [c.method for c in standin.calls if c.status == 200]
    assert methods.index("deleteWebhook") < methods.index("getUpdates")
    # Only the probe above met the 409; the bot's own polls all succeeded.
    assert [c.status for c in standin.calls_to("getUpdates")].count(409) == 1
