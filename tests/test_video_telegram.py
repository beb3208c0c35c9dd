"""Videos on Telegram, end to end against the Bot API stand-in: a video, a video note, an
animation and a video sent as a file get a per-track answer with the contact sheet; a long
check gets one progress message, edited; a group's /check as a reply to a video; the real
detector on a real clip."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.main import build_pipeline, service_options
from detector.service import DetectorService

from .standins.fakes import ANNOTATED, FakeDetector, always, video_analysis
from .standins.telegram_api import TelegramStandIn
from .standins.telegram_harness import running_bot, running_bot_on, settings_for
from .video_clips import encode_video, two_faces

pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")

CLIP = b"\x00\x00\x00\x18ftypmp42 (the fake detector does not read it)"


def _media(standin: TelegramStandIn, kind: str, data: bytes) -> dict[str, Any]:
    stored = standin.add_file(data, name="clip.mp4")
    base = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
            "file_size": len(data), "duration": 2}  # fmt: skip
    if kind == "video":
        return {"video": {**base, "width": 640, "height": 360, "mime_type": "video/mp4"}}
    if kind == "video_note":
        return {"video_note": {**base, "length": 384}}
    if kind == "animation":
        return {"animation": {**base, "width": 320, "height": 240, "mime_type": "video/mp4"}}
    return {"document": standin.document(stored, "video/mp4", "clip.mp4")}


@pytest.mark.parametrize("kind", ["video", "video_note", "animation", "document"])
async def test_each_kind_of_video_gets_a_per_track_answer_with_the_contact_sheet(
    standin: TelegramStandIn, kind: str
) -> None:
    detector = FakeDetector(always(video_analysis([0.1, 0.2, 0.1], [0.9, 0.8, 0.95])))
    async with running_bot_on(standin, detector, telegram_progress_after_s=60):
        user = standin.user()
        msg = standin.message(standin.private_chat(user), user, **_media(standin, kind, CLIP))
        await standin.push_update({"message": msg})
        sent = await standin.wait_for("sendPhoto", where=lambda c: c.status == 200)
    assert detector.seen == [CLIP]
    assert sent.reply_to == msg["message_id"] and sent.files["photo"] == ANNOTATED
    lines = sent.text.splitlines()
    assert lines[0].startswith("🟥 Likely manipulated — 88%")
    assert lines[1] == "Checked 3 frames of a 0.8 s video; 2 faces followed; the verdict " \
        "follows the most suspicious one."  # fmt: skip
    assert lines[2].startswith("Face 1 (0.0-0.5 s, 3 frames): 🟩 13% on average")
    assert lines[3].startswith("Face 2 (0.0-0.5 s, 3 frames): 🟥 88% on average, peak 95%")
    actions = [c.params.get("action") for c in standin.calls_to("sendChatAction")]
    assert "upload_video" in actions
    assert standin.calls_to("editMessageText") == []  # quick: no progress message


async def test_a_long_check_shows_one_progress_message_and_edits_it(
    standin: TelegramStandIn,
) -> None:
    detector = FakeDetector(always(video_analysis([0.2, 0.3, 0.1, 0.2])))
    async with running_bot_on(
        standin, detector, telegram_progress_after_s=0, telegram_progress_every_s=0
    ):
        user = standin.user()
        msg = standin.message(standin.private_chat(user), user, **_media(standin, "video", CLIP))
        await standin.push_update({"message": msg})
        await standin.wait_for("sendPhoto", where=lambda c: c.status == 200)
    progress = [c for c in standin.calls_to("sendMessage") if c.reply_to == msg["message_id"]]
    assert len(progress) == 1  # one message, then edits
    assert progress[0].text == "Checking the video… checked 1 of 4 frames"
    edits = [c for c in standin.calls_to("editMessageText") if c.status == 200]
    assert edits and edits[-1].params["text"] == "Checked all 4 frames; writing the answer…"
    edited = [m for m in standin.messages.values() if "edit_date" in m]
    assert len(edited) == 1 and edited[0]["text"] == "Checked all 4 frames; writing the answer…"
    assert {c.params["message_id"] for c in edits} == {str(edited[0]["message_id"])}


async def test_videos_off_are_refused_as_before(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(video_analysis([0.2])))
    async with running_bot_on(standin, detector, video_enabled=False):
        user = standin.user()
        msg = standin.message(standin.private_chat(user), user, **_media(standin, "video", CLIP))
        await standin.push_update({"message": msg})
        call = await standin.wait_for("sendMessage", where=lambda c: c.status == 200)
    assert call.text.startswith("I can only check still images.")
    assert detector.seen == [] and standin.calls_to("getFile") == []


async def test_check_as_a_reply_to_a_video_in_a_group(standin: TelegramStandIn) -> None:
    detector = FakeDetector(always(video_analysis([0.9, 0.9])))
    async with running_bot_on(standin, detector, telegram_progress_after_s=60):
        group = standin.group_chat()
        poster, asker = standin.user(1), standin.user(2)
        video = standin.message(group, poster, **_media(standin, "video", CLIP))
        ask = standin.command(group, asker, "/check", reply_to=video)
        await standin.push_update({"message": ask})
        sent = await standin.wait_for("sendPhoto", where=lambda c: c.status == 200)
    assert sent.reply_to == ask["message_id"] and "Face 1" in sent.text
    assert detector.seen == [CLIP]


async def test_the_real_detector_answers_a_real_clip(
    standin: TelegramStandIn, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPFAKE_BOT_FACE_FINDER", "hog")  # fast; the same Finder boundary
    settings = settings_for(
        standin, deepfake_bot_weights=tiny_checkpoint, detector_precision="fp32",
        detector_threads=2, video_frames=6, telegram_progress_after_s=60,
    )  # fmt: skip
    pipeline = build_pipeline(settings)
    clip = encode_video(two_faces(), seconds=1.2, fps=5)
    from detector.video import VideoPipeline
    from detector.video_results import VideoLimits

    expected = VideoPipeline(pipeline, VideoLimits(max_frames=6)).analyze(clip)
    async with running_bot(settings, DetectorService(pipeline, service_options(settings))):
        user = standin.user()
        msg = standin.message(standin.private_chat(user), user, **_media(standin, "video", clip))
        await standin.push_update({"message": msg})
        sent = await standin.wait_for("sendPhoto", where=lambda c: c.status == 200)
    assert "2 faces followed" in sent.text and "Checked 6 frames" in sent.text
    for track in expected.tracks:
        assert f"Face {track.number} (" in sent.text
    with Image.open(io.BytesIO(sent.files["photo"])) as sheet:
        assert sheet.format == "JPEG" and sheet.width == 2 * 360 + 3 * 4
