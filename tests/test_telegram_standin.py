"""The Bot API stand-in itself: its payloads are ones PTB fully understands (no field lands in
``api_kwargs``), the check that guards this can fail, and it is strict where Telegram is."""

from __future__ import annotations

import aiohttp
import pytest
from telegram import Update

from .standins.fakes import jpeg
from .standins.telegram_api import TelegramStandIn, unknown_fields

# The stand-in fixtures; every test here also fails on an ERROR log from the bot.
pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")


def _payloads(s: TelegramStandIn) -> list[dict[str, object]]:
    alice, bob = s.user(1, "Alice"), s.user(2, "Bob")
    private, group = s.private_chat(alice), s.group_chat()
    stored = s.add_file(jpeg())
    photo = s.message(group, alice, photo=s.photo_sizes(stored), media_group_id="77",
                      caption="/check now", caption_entities=[
                          {"type": "bot_command", "offset": 0, "length": 6}])  # fmt: skip
    document = s.message(private, alice, document=s.document(stored, "image/png", "a.png"))
    bare_doc = s.message(
        private, alice, document=s.document(stored, None, None, declare_size=False)
    )
    clip = {"file_id": "v", "file_unique_id": "vu", "width": 1, "height": 1, "duration": 1}
    video = s.message(private, alice, video=clip)
    reply = s.command(group, bob, "/check@deepfake_check_bot", reply_to=photo)
    text = s.message(private, alice, text="hello")
    messages = [photo, document, bare_doc, video, reply, text]
    return [{"update_id": i, "message": m} for i, m in enumerate(messages, start=1)]


def test_every_builder_yields_fields_ptb_knows() -> None:
    s = TelegramStandIn()
    for payload in _payloads(s):
        update = Update.de_json(payload, None)
        assert update.api_kwargs == {}
        assert unknown_fields(update) == []
    assert update.message is not None  # the last one, for the type checker


def test_the_field_check_can_fail() -> None:
    s = TelegramStandIn()
    payload = _payloads(s)[4]
    payload["message"]["reply_to_message"]["photo"][0]["colour"] = "red"  # type: ignore[index]
    problems = unknown_fields(Update.de_json(payload, None))
    assert problems == ["update.message.reply_to_message.photo[0]: ['colour']"]


async def test_push_update_refuses_payloads_ptb_does_not_know(standin: TelegramStandIn) -> None:
    with pytest.raises(AssertionError, match="fields PTB does not know"):
        await standin.push_update({"message": {**_payloads(standin)[5]["message"], "mood": 1}})  # type: ignore[dict-item]


async def test_strict_api(standin: TelegramStandIn) -> None:
    base = f"{standin.api_url}{standin.token}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/sendSticker", data={"chat_id": "1"}) as r:
            assert r.status == 404
        async with http.post(f"{standin.api_url}999:wrong/getMe") as r:
            assert r.status == 401
        async with http.post(f"{base}/sendMessage", data={"chat_id": "5", "text": "x"}) as r:
            assert (await r.json())["description"] == "Bad Request: chat not found"
        standin.fail_next("getMe", 429, retry_after=3)
        async with http.post(f"{base}/getMe") as r:
            body = await r.json()
            assert r.status == 429 and body["parameters"] == {"retry_after": 3}
        async with http.post(f"{base}/getMe") as r:
            assert r.status == 200
    assert standin.unknown == ["sendSticker"]
    standin.unknown.clear()  # expected here; the fixture fails tests that leave any behind


async def test_getfile_refuses_files_over_20_mb(standin: TelegramStandIn) -> None:
    big = standin.add_file(b"x", size=20 * 1024 * 1024 + 1)
    ok = standin.add_file(b"x", size=20 * 1024 * 1024)
    base = f"{standin.api_url}{standin.token}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/getFile", data={"file_id": big.file_id}) as r:
            assert (await r.json())["description"] == "Bad Request: file is too big"
        async with http.post(f"{base}/getFile", data={"file_id": ok.file_id}) as r:
            assert (await r.json())["result"]["file_path"] == ok.file_path
