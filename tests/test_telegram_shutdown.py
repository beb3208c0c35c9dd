"""Orderly shutdown in-process: intake stops first, work already taken in (a running check, an
album still collecting) is answered, and only then does the detector close."""

from __future__ import annotations

import asyncio
import time

import pytest
from telegram.error import InvalidToken

from .standins.fakes import FakeDetector, always, analysis, jpeg
from .standins.telegram_api import TelegramStandIn
from .standins.telegram_harness import running_bot_on

# The stand-in fixtures; every test here also fails on an ERROR log from the bot.
pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")


async def test_running_check_is_answered_and_later_updates_are_left_for_next_time(
    standin: TelegramStandIn,
) -> None:
    detector = FakeDetector(always(analysis(0.66)))
    detector.hold.clear()
    user = standin.user()
    chat = standin.private_chat(user)
    async with running_bot_on(standin, detector) as running:
        first = standin.message(chat, user, photo=standin.photo_sizes(standin.add_file(jpeg())))
        await standin.push_update({"message": first})
        await asyncio.wait_for(detector.entered.wait(), 10)

        stopping = asyncio.create_task(running.service.stop())
        # PTB's last poll (timeout 0) confirms what it took; after it, nothing more is taken.
        await standin.wait_for("getUpdates", where=lambda c: c.params.get("timeout") == "0")
        late = standin.message(chat, user, photo=standin.photo_sizes(standin.add_file(jpeg())))
        await standin.push_update({"message": late})
        await asyncio.sleep(0.3)
        assert not stopping.done()  # waiting for the check in flight
        detector.hold.set()
        await asyncio.wait_for(stopping, 10)

    (reply,) = standin.replies_to(chat["id"], first["message_id"])
    assert reply.method == "sendPhoto" and reply.text.startswith("🟨 Uncertain — 66%")
    assert standin.replies_to(chat["id"], late["message_id"]) == []
    assert [u["message"]["message_id"] for u in standin.pending_updates] == [late["message_id"]]
    assert detector.closed and detector.closed_at > reply.at
    assert len(detector.seen) == 1


async def test_album_still_collecting_is_answered_at_shutdown(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.1)))
    user = standin.user()
    chat = standin.private_chat(user)
    # A long album window: only the shutdown can have flushed it.
    async with running_bot_on(standin, detector, telegram_album_wait_s=20) as running:
        parts = [
            standin.message(
                chat,
                user,
                photo=standin.photo_sizes(standin.add_file(jpeg())),
                media_group_id="4242",
            )
            for _ in range(2)
        ]
        for part in parts:
            await standin.push_update({"message": part})
        while len(standin.pending_updates) or running.telegram.albums.collecting == 0:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        started = time.monotonic()
    # ``running_bot_on`` stopped the service on exit.
    assert time.monotonic() - started < 10
    summary = standin.calls_to("sendMessage")
    assert len(summary) == 1 and summary[0].reply_to == parts[0]["message_id"]
    assert summary[0].text.startswith("Checked 2 images:")
    assert len(detector.seen) == 2


async def test_rejected_token_fails_start_up_cleanly(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.1)))
    with pytest.raises(InvalidToken):
        async with running_bot_on(standin, detector, telegram_token="999:not-the-token"):
            pass  # pragma: no cover - start-up fails
    assert detector.closed  # the detector is still closed in order
    assert [c.method for c in standin.calls] == []  # 401 before any method ran
