"""Groups, end to end against the stand-in: ``/check`` as a reply (privacy mode on), usage
answers, captions, and the admin-only auto-scan switch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.core import ChatSettings

from .standins.fakes import ANNOTATED, FakeDetector, always, analysis, jpeg
from .standins.telegram_api import TelegramStandIn
from .standins.telegram_harness import running_bot_on

# The stand-in fixtures; every test here also fails on an ERROR log from the bot.
pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")


def _group(standin: TelegramStandIn) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    return standin.group_chat(), standin.user(1001, "Alice"), standin.user(1002, "Bob")


def _photo(standin: TelegramStandIn, chat: Any, sender: Any, data: bytes, **extra: Any) -> Any:
    stored = standin.add_file(data)
    return standin.message(chat, sender, photo=standin.photo_sizes(stored), **extra)


async def _answer(
    standin: TelegramStandIn, msg: dict[str, Any], method: str = "sendMessage"
) -> Any:
    return await standin.wait_for(method, where=lambda c: c.reply_to == msg["message_id"])


async def test_check_as_reply_checks_the_replied_picture(standin: TelegramStandIn) -> None:
    picture = jpeg(120, 90)
    detector = FakeDetector(always(analysis(0.81)))
    async with running_bot_on(standin, detector):
        group, alice, bob = _group(standin)
        photo = _photo(standin, group, alice, picture)
        # Privacy mode: the bot never sees Alice's photo itself, only Bob's command replying to it.
        command = standin.command(group, bob, "/check", reply_to=photo)
        await standin.push_update({"message": command})
        sent = await _answer(standin, command, "sendPhoto")
    assert detector.seen == [picture]
    assert sent.chat_id == group["id"]
    assert sent.text.startswith("🟥 Likely manipulated — 81%")
    assert sent.files["photo"] == ANNOTATED


async def test_check_addressed_to_the_bot_by_name_works(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.81)))
    async with running_bot_on(standin, detector):
        group, alice, bob = _group(standin)
        document = standin.document(standin.add_file(jpeg()), "image/png", "x.png")
        target = standin.message(group, alice, document=document)
        other = standin.command(group, bob, "/check@some_other_bot", reply_to=target)
        ours = standin.command(group, bob, "/check@deepfake_check_bot", reply_to=target)
        await standin.push_update({"message": other})
        await standin.push_update({"message": ours})
        await _answer(standin, ours, "sendPhoto")
    assert len(detector.seen) == 1
    assert standin.replies_to(group["id"], other["message_id"]) == []
    # An image sent as a file carries its original bytes: no compression hint.
    assert "compressed" not in standin.calls_to("sendPhoto")[0].text


async def test_check_without_reply_explains_usage(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_bot_on(standin, detector):
        group, _, bob = _group(standin)
        command = standin.command(group, bob, "/check")
        await standin.push_update({"message": command})
        sent = await _answer(standin, command)
    assert sent.text.startswith("Reply to a photo or an image file with /check")
    assert detector.seen == []


async def test_check_replying_to_text_says_there_is_no_picture(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_bot_on(standin, detector):
        group, alice, bob = _group(standin)
        text = standin.message(group, alice, text="look at this")
        command = standin.command(group, bob, "/check", reply_to=text)
        await standin.push_update({"message": command})
        sent = await _answer(standin, command)
    assert sent.text.startswith("The message you replied to has no picture.")
    assert detector.seen == []


async def test_picture_captioned_check_is_checked(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.45)))
    async with running_bot_on(standin, detector):
        group, alice, _ = _group(standin)
        caption = "/check is this one real?"
        entities = [{"type": "bot_command", "offset": 0, "length": 6}]
        other = _photo(standin, group, alice, jpeg(), caption="/check@other_bot")
        photo = _photo(standin, group, alice, jpeg(), caption=caption, caption_entities=entities)
        await standin.push_update({"message": other})
        await standin.push_update({"message": photo})
        sent = await _answer(standin, photo, "sendPhoto")
    assert sent.text.startswith("🟨 Uncertain — 45%")
    assert len(detector.seen) == 1  # the picture for another bot was left alone


async def test_group_pictures_are_ignored_without_autoscan(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.99)))
    async with running_bot_on(standin, detector):
        group, alice, _ = _group(standin)
        await standin.push_update({"message": _photo(standin, group, alice, jpeg())})
        await standin.push_update({"message": standin.message(group, alice, text="hello")})
        await standin.wait_for("getUpdates", where=lambda c: int(c.params.get("offset", 0)) >= 3)
        await asyncio.sleep(0.2)
    assert detector.seen == []
    sent = {"sendMessage", "sendPhoto", "sendChatAction", "getFile"}
    assert [c.method for c in standin.calls if c.method in sent] == []


async def test_autoscan_switch_is_for_admins_and_needs_the_bot_to_see_messages(
    standin: TelegramStandIn,
) -> None:
    detector = FakeDetector(always(analysis(0.5)))
    chat_settings = ChatSettings()
    async with running_bot_on(standin, detector, chat_settings=chat_settings):
        group, alice, bob = _group(standin)
        standin.set_member(group["id"], alice["id"], "administrator")

        async def say(sender: Any, text: str) -> str:
            command = standin.command(group, sender, text)
            await standin.push_update({"message": command})
            return str((await _answer(standin, command)).text)

        assert (await say(bob, "/autoscan on")).startswith("Only the group's admins")
        assert (await say(alice, "/autoscan on")).startswith("I can only see every picture")
        assert not chat_settings.autoscan(f"telegram:{group['id']}")
        standin.set_member(group["id"], standin.bot_user["id"], "administrator")
        assert (await say(alice, "/autoscan on")).startswith("Auto-scan is on")
        assert chat_settings.autoscan(f"telegram:{group['id']}")
        assert (await say(bob, "/autoscan")).endswith("Auto-scan is currently on in this chat.")
        assert (await say(alice, "/autoscan off")).startswith("Auto-scan is off")
        assert not chat_settings.autoscan(f"telegram:{group['id']}")


async def test_autoscan_speaks_up_only_about_suspicious_faces(standin: TelegramStandIn) -> None:
    scores = {b"F": analysis(0.9), b"R": analysis(0.1), b"U": analysis(0.5)}
    detector = FakeDetector(lambda data: scores[data[-1:]])
    group = standin.group_chat()
    chat_settings = ChatSettings(autoscan={f"telegram:{group['id']}"})
    async with running_bot_on(standin, detector, chat_settings=chat_settings):
        alice = standin.user()
        real = _photo(standin, group, alice, jpeg() + b"R")
        fake = _photo(standin, group, alice, jpeg() + b"F")
        unsure = _photo(standin, group, alice, jpeg() + b"U")
        for msg in (real, fake, unsure):
            await standin.push_update({"message": msg})
        await _answer(standin, fake, "sendPhoto")
        await _answer(standin, unsure, "sendPhoto")
        await asyncio.sleep(0.2)
    assert len(detector.seen) == 3
    assert standin.replies_to(group["id"], real["message_id"]) == []
    assert len(standin.calls_to("sendPhoto")) == 2
    assert standin.calls_to("sendMessage") == []


async def test_replies_stay_in_the_forum_topic(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.2)))
    async with running_bot_on(standin, detector):
        group = {**standin.group_chat(), "is_forum": True}
        alice, bob = standin.user(1001), standin.user(1002)
        topic = {"message_thread_id": 77, "is_topic_message": True}
        photo = _photo(standin, group, alice, jpeg(), **topic)
        command = standin.command(group, bob, "/check", reply_to=photo)
        command.update(topic)
        await standin.push_update({"message": command})
        sent = await _answer(standin, command, "sendPhoto")
    assert sent.params["message_thread_id"] == "77"
    actions = standin.calls_to("sendChatAction")
    assert actions and all(c.params["message_thread_id"] == "77" for c in actions)
