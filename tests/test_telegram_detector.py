"""The whole path with the real detector: a Telegram photo goes through the real adapter, core,
detector service and tiny generated checkpoint, and the reply states exactly what the detector
computed for those bytes (no scores are hard-coded here)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from bot.core import ModelCard
from bot.core.replies import format_percent
from bot.main import build_pipeline
from detector.errors import NoFaceFound
from detector.service import DetectorService

from .standins.telegram_api import TelegramStandIn
from .standins.telegram_harness import running_bot, settings_for

# The stand-in fixtures; every test here also fails on an ERROR log from the bot.
pytest_plugins = ["tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")


async def test_photo_reply_states_the_real_detectors_result(
    standin: TelegramStandIn, tiny_checkpoint: Path, astronaut_jpeg: bytes, coffee_jpeg: bytes
) -> None:
    settings = settings_for(
        standin, deepfake_bot_weights=tiny_checkpoint, detector_precision="fp32",
        detector_threads=2,
    )  # fmt: skip
    pipeline = build_pipeline(settings)
    expected = pipeline.analyze(astronaut_jpeg)  # the same model, called directly
    card = ModelCard.from_config(pipeline.classifier.config)
    service = DetectorService(pipeline)
    async with running_bot(settings, service, card=card):
        user = standin.user()
        chat = standin.private_chat(user)
        face = standin.message(
            chat, user, photo=standin.photo_sizes(standin.add_file(astronaut_jpeg))
        )
        await standin.push_update({"message": face})
        sent = await standin.wait_for("sendPhoto")
        empty = standin.message(
            chat, user, photo=standin.photo_sizes(standin.add_file(coffee_jpeg))
        )
        await standin.push_update({"message": empty})
        no_face = await standin.wait_for(
            "sendMessage", where=lambda c: c.reply_to == empty["message_id"]
        )
    assert len(expected.faces) == 1
    headline = sent.text.splitlines()[0]
    assert expected.verdict.label in headline
    assert f"— {format_percent(expected.p_fake)} probability" in headline
    assert sent.reply_to == face["message_id"]
    with Image.open(io.BytesIO(sent.files["photo"])) as annotated:
        assert annotated.format == "JPEG"
        assert annotated.size == (expected.width, expected.height)
    assert no_face.text == NoFaceFound.user_message
    assert service.stats.analysed == 1 and service.stats.failed == 1
    assert not service.accepting  # closed by the service's orderly stop
