"""Private chats, end to end: the real PTB application polls the Bot API stand-in over real
sockets; the detector is a scripted fake (the real one: test_telegram_detector.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.core.replies import APOLOGY
from detector.errors import CorruptImage, DetectorBusy, NoFaceFound

from .standins.fakes import ANNOTATED, FakeDetector, always, analysis, jpeg
from .standins.telegram_api import TelegramStandIn
from .standins.telegram_harness import running_bot_on

# The stand-in fixtures; every test here also fails on an ERROR log from the bot.
pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")

MB = 1024 * 1024


def _private(standin: TelegramStandIn, user_id: int = 1001) -> tuple[dict[str, Any], Any]:
    user = standin.user(user_id)
    return user, standin.private_chat(user)


async def _send_photo(standin: TelegramStandIn, data: bytes, user_id: int = 1001) -> dict[str, Any]:
    user, chat = _private(standin, user_id)
    stored = standin.add_file(data)
    msg = standin.message(chat, user, photo=standin.photo_sizes(stored))
    await standin.push_update({"message": msg})
    return msg


async def _send_document(
    standin: TelegramStandIn,
    data: bytes,
    mime: str | None,
    name: str | None,
    *,
    size: int | None = None,
    declare_size: bool = True,
) -> dict[str, Any]:
    user, chat = _private(standin)
    stored = standin.add_file(data, size=size, name=name or "file")
    document = standin.document(stored, mime, name, declare_size=declare_size)
    msg = standin.message(chat, user, document=document)
    await standin.push_update({"message": msg})
    return msg


async def _reply_text(standin: TelegramStandIn, msg: dict[str, Any]) -> str:
    call = await standin.wait_for(
        "sendMessage", where=lambda c: c.reply_to == msg["message_id"] and c.status == 200
    )
    return call.text


async def test_photo_gets_verdict_with_annotated_image_and_compression_hint(
    standin: TelegramStandIn,
) -> None:
    detector = FakeDetector(always(analysis(0.93)))
    picture = jpeg()
    async with running_bot_on(standin, detector):
        msg = await _send_photo(standin, picture)
        sent = await standin.wait_for("sendPhoto")
    assert sent.chat_id == msg["chat"]["id"]
    assert sent.reply_to == msg["message_id"]
    assert sent.files["photo"] == ANNOTATED
    assert sent.text.startswith("🟥 Likely manipulated — 93% probability of a face manipulation")
    assert "model judges faces only" in sent.text
    assert "send the picture as a file" in sent.text
    # The largest size was downloaded (not a thumbnail), and the detector got exactly its bytes.
    largest = standin.files[msg["photo"][-1]["file_id"]]
    assert [c.params["file_path"] for c in standin.calls_to("download")] == [largest.file_path]
    assert detector.seen == [picture]
    actions = [c.params["action"] for c in standin.calls_to("sendChatAction")]
    assert actions[0] == "typing" and "upload_photo" in actions
    assert len(standin.replies_to(sent.chat_id, msg["message_id"])) == 1


async def test_several_faces_get_one_line_each(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.12, 0.55, 0.91)))
    async with running_bot_on(standin, detector):
        await _send_photo(standin, jpeg())
        sent = await standin.wait_for("sendPhoto")
    lines = sent.text.splitlines()
    assert lines[0] == "🟥 Likely manipulated — 91% probability of a face manipulation"
    assert "Face 1 (left): 🟩 12%" in lines
    assert "Face 2 (centre): 🟨 55%" in lines
    assert "Face 3 (right): 🟥 91%" in lines


async def test_image_file_is_checked_on_its_original_bytes_without_hint(
    standin: TelegramStandIn,
) -> None:
    detector = FakeDetector(always(analysis(0.08)))
    original = jpeg(300, 200, (1, 2, 3))
    async with running_bot_on(standin, detector):
        msg = await _send_document(standin, original, "image/jpeg", "portrait.jpg")
        sent = await standin.wait_for("sendPhoto")
    assert detector.seen == [original]
    assert sent.reply_to == msg["message_id"]
    assert sent.text.startswith("🟩 No manipulation detected — 8%")
    assert "compressed" not in sent.text


async def test_non_image_file_is_refused_without_download(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_bot_on(standin, detector):
        msg = await _send_document(standin, b"%PDF-1.7\n", "application/pdf", "report.pdf")
        text = await _reply_text(standin, msg)
    assert text.startswith("This file is not an image.")
    assert standin.calls_to("getFile") == []
    assert detector.seen == []


async def test_video_is_refused_as_unsupported(standin: TelegramStandIn) -> None:
    """With videos off (VIDEO_ENABLED=false); videos on: tests/test_video_telegram.py."""
    detector = FakeDetector(always(analysis(0.5)))
    async with running_bot_on(standin, detector, video_enabled=False):
        user, chat = _private(standin)
        stored = standin.add_file(b"\x00\x00\x00\x18ftypmp42", name="clip.mp4")
        video = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": 640,
            "height": 360,
            "duration": 3,
        }
        msg = standin.message(chat, user, video=video)
        await standin.push_update({"message": msg})
        text = await _reply_text(standin, msg)
    assert text.startswith("I can only check still images.")
    assert standin.calls_to("getFile") == []


async def test_file_over_telegram_limit_is_refused_before_download(
    standin: TelegramStandIn,
) -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_bot_on(standin, detector):
        msg = await _send_document(standin, jpeg(), "image/jpeg", "big.jpg", size=31 * MB)
        text = await _reply_text(standin, msg)
    assert text == (
        "This file is 31 MB; Telegram lets bots download files of up to 20 MB. "
        "Please send a smaller version of the picture."
    )
    assert standin.calls_to("getFile") == []
    assert detector.seen == []


async def test_undeclared_size_refused_when_getfile_says_too_big(
    standin: TelegramStandIn,
) -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_bot_on(standin, detector):
        msg = await _send_document(
            standin, jpeg(), "image/png", "big.png", size=25 * MB, declare_size=False
        )
        text = await _reply_text(standin, msg)
    assert text.startswith("This file is too large; Telegram lets bots download files of up to")
    assert [c.status for c in standin.calls_to("getFile")] == [400]
    assert standin.calls_to("download") == []
    assert detector.seen == []


async def test_downloaded_bytes_over_image_limit_are_refused(standin: TelegramStandIn) -> None:
    # A self-hosted Bot API server lifts Telegram's limit; the image limit still holds, even
    # when the declared size understated the file.
    detector = FakeDetector(always(analysis(0.5)))
    async with running_bot_on(standin, detector, max_image_bytes=10_000):
        data = b"\xff\xd8" + bytes(30_718)
        msg = await _send_document(standin, data, "image/jpeg", "a.jpg", size=5_000)
        text = await _reply_text(standin, msg)
    assert text == "This file is 30 KB; I can check images of up to 10 KB."
    assert detector.seen == []


async def test_no_face_says_so_without_a_score(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(NoFaceFound("none")))
    async with running_bot_on(standin, detector):
        msg = await _send_photo(standin, jpeg())
        text = await _reply_text(standin, msg)
    assert text == NoFaceFound.user_message
    assert "%" not in text
    assert standin.calls_to("sendPhoto") == []


async def test_unreadable_image_gets_the_detector_reason(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(CorruptImage("truncated")))
    async with running_bot_on(standin, detector):
        msg = await _send_document(standin, b"\xff\xd8\xff", "image/jpeg", "broken.jpg")
        text = await _reply_text(standin, msg)
    assert text == CorruptImage.user_message


async def test_busy_detector_answers_at_once(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(DetectorBusy("full")))
    async with running_bot_on(standin, detector):
        msg = await _send_photo(standin, jpeg())
        text = await _reply_text(standin, msg)
    assert text == "The detector is busy right now. Please try again in a moment."


async def test_full_check_queue_answers_busy_while_others_run(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.4)))
    detector.hold.clear()  # the first check stays in flight
    async with running_bot_on(standin, detector, max_concurrent_checks=1, check_queue_size=0):
        first = await _send_photo(standin, jpeg(), user_id=1)
        await asyncio.wait_for(detector.entered.wait(), 10)
        second = await _send_photo(standin, jpeg(), user_id=2)
        text = await _reply_text(standin, second)
        assert text == "The detector is busy right now. Please try again in a moment."
        assert standin.replies_to(first["chat"]["id"], first["message_id"]) == []
        detector.hold.set()
        sent = await standin.wait_for("sendPhoto")
    assert sent.reply_to == first["message_id"]
    assert sent.text.startswith("🟨 Uncertain — 40%")


async def test_rate_limit_per_user(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.2)))
    async with running_bot_on(standin, detector, rate_limit_per_minute=1):
        await _send_photo(standin, jpeg(), user_id=7)
        await standin.wait_for("sendPhoto")
        second = await _send_photo(standin, jpeg(), user_id=7)
        text = await _reply_text(standin, second)
        other = await _send_photo(standin, jpeg(), user_id=8)  # someone else is not limited
        await standin.wait_for("sendPhoto", where=lambda c: c.reply_to == other["message_id"])
    assert text.startswith("You have reached the limit of 1 checks per minute.")
    assert "try again in" in text
    assert len(detector.seen) == 2


async def test_flood_control_retry_after_is_honoured(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.75)))
    standin.fail_next("sendPhoto", 429, retry_after=1)
    async with running_bot_on(standin, detector):
        msg = await _send_photo(standin, jpeg())
        delivered = await standin.wait_for("sendPhoto", where=lambda c: c.status == 200)
    (refused,) = [c for c in standin.calls_to("sendPhoto") if c.status == 429]
    assert delivered.reply_to == msg["message_id"]
    assert delivered.at - refused.at >= 1.0
    assert delivered.files["photo"] == ANNOTATED


async def test_download_cut_mid_way_is_reported_not_scored(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.9)))
    async with running_bot_on(standin, detector):
        user, chat = _private(standin)
        stored = standin.add_file(jpeg(400, 400) + bytes(200_000), cut_after=70_000)
        msg = standin.message(chat, user, photo=standin.photo_sizes(stored))
        await standin.push_update({"message": msg})
        text = await _reply_text(standin, msg)
    assert text == "I could not download this image. Please send it again."
    assert len(standin.calls_to("download")) == 1
    assert detector.seen == []
    assert standin.calls_to("sendPhoto") == []


async def test_failed_getfile_is_reported(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.9)))
    standin.fail_next("getFile", 502)
    async with running_bot_on(standin, detector):
        msg = await _send_photo(standin, jpeg())
        text = await _reply_text(standin, msg)
    assert text == "I could not download this image. Please send it again."
    assert detector.seen == []


async def test_unexpected_error_is_logged_and_apologised_for(
    standin: TelegramStandIn, expect_bot_errors: None, caplog: pytest.LogCaptureFixture
) -> None:
    detector = FakeDetector(always(RuntimeError("model exploded")))
    async with running_bot_on(standin, detector):
        msg = await _send_photo(standin, jpeg())
        text = await _reply_text(standin, msg)
    assert text == APOLOGY
    logged = [r for r in caplog.records if r.name == "bot.core.replies" and r.exc_info]
    assert logged and "model exploded" in str(logged[0].exc_info[1])


async def test_album_gets_one_combined_reply(standin: TelegramStandIn) -> None:
    scores = {b"A": analysis(0.95, 0.1), b"B": NoFaceFound("none"), b"C": analysis(0.05)}
    detector = FakeDetector(lambda data: scores[data[-1:]])
    async with running_bot_on(standin, detector, telegram_album_wait_s=0.5):
        user, chat = _private(standin)
        parts = []
        for tag in (b"A", b"B", b"C"):
            stored = standin.add_file(jpeg() + tag)
            parts.append(
                standin.message(
                    chat, user, photo=standin.photo_sizes(stored), media_group_id="13578"
                )
            )
        for part in parts:
            await standin.push_update({"message": part})
        summary = await standin.wait_for("sendMessage")
        album = await standin.wait_for("sendMediaGroup")
        await asyncio.sleep(0.3)  # nothing else may follow
    assert summary.reply_to == parts[0]["message_id"]
    assert summary.text.splitlines()[:4] == [
        "Checked 3 images:",
        "Image 1: 🟥 Likely manipulated — 95% (2 faces)",
        "Image 2: No face found (the detector only judges faces).",
        "Image 3: 🟩 No manipulation detected — 5%",
    ]
    assert "send the picture as a file" in summary.text
    assert [m["caption"] for m in album.json("media")] == ["Image 1", "Image 3"]
    assert set(album.files.values()) == {ANNOTATED}
    assert album.reply_to is not None
    assert len(standin.calls_to("sendMessage")) == 1
    assert standin.calls_to("sendPhoto") == []
    assert sorted(detector.seen) == sorted(jpeg() + t for t in (b"A", b"B", b"C"))


async def test_start_help_about_and_command_menu(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_bot_on(standin, detector, rate_limit_per_minute=7):
        user, chat = _private(standin)
        answers = {}
        for n, command in enumerate(("/start", "/help", "/about"), start=1):
            await standin.push_update({"message": standin.command(chat, user, command)})
            answers[command] = (await standin.wait_for("sendMessage", count=n)).text
    assert "Send me a photo or an image file" in answers["/start"]
    assert "never stored" in answers["/help"]
    assert "Up to 7 checks per person per minute." in answers["/help"]
    assert "up to 25 MB" in answers["/help"]
    assert answers["/about"].startswith("Model: fake detector (tests)")
    assert "• 30% to 70%: Uncertain" in answers["/about"]
    assert "No measured figures ship with these weights." in answers["/about"]
    # The menu was registered at start-up: everyone's, and the admins' (with /autoscan).
    assert [c["command"] for c in standin.commands["default"]] == [
        "check", "help", "about", "start",
    ]  # fmt: skip
    assert "autoscan" in [c["command"] for c in standin.commands["all_chat_administrators"]]


async def test_plain_text_in_private_gets_a_pointer(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(analysis(0.5)))
    async with running_bot_on(standin, detector):
        user, chat = _private(standin)
        msg = standin.message(chat, user, text="is this real?")
        await standin.push_update({"message": msg})
        text = (await standin.wait_for("sendMessage")).text
    assert text.startswith("Send me a photo or an image file to check it.")
