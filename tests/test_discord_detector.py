"""The whole Discord path with the real detector: ``/check`` goes through the real adapter,
core, detector service and tiny generated checkpoint, and the embed states exactly what the
detector computed for those bytes (no scores are hard-coded here)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from bot.core import ModelCard
from bot.core.replies import format_percent
from bot.discord_bot.render import COLOURS, NO_VERDICT
from bot.main import build_pipeline
from detector.errors import NoFaceFound
from detector.service import DetectorService

from .standins.discord_api import DiscordStandIn
from .standins.discord_harness import discord_settings, running_discord

pytest_plugins = ["tests.standins.discord_fixtures", "tests.standins.telegram_fixtures"]
pytestmark = pytest.mark.usefixtures("no_bot_errors")


async def test_check_states_the_real_detectors_result(
    discord_standin: DiscordStandIn,
    settings_db: Path,
    tiny_checkpoint: Path,
    astronaut_jpeg: bytes,
    coffee_jpeg: bytes,
) -> None:
    s = discord_standin
    channel = s.channel(s.add_guild(), "general")
    settings = discord_settings(
        s, settings_db, deepfake_bot_weights=tiny_checkpoint, detector_precision="fp32",
        detector_threads=2,
    )  # fmt: skip
    pipeline = build_pipeline(settings)
    expected = pipeline.analyze(astronaut_jpeg)  # the same model, called directly
    card = ModelCard.from_config(pipeline.classifier.config)
    service = DetectorService(pipeline)
    async with running_discord(settings, service, card=card):
        face = await s.answered(
            await s.check(s.user(), channel, image=s.attachment(astronaut_jpeg, "astronaut.jpg"))
        )
        empty = await s.answered(
            await s.check(s.user(), channel, image=s.attachment(coffee_jpeg, "coffee.jpg"))
        )
    assert len(expected.faces) == 1
    (followup,) = face.followups
    (embed,) = followup.embeds
    assert embed["title"].endswith(
        f"{expected.verdict.label} — {format_percent(expected.p_fake)} probability of a face "
        "manipulation"
    )
    assert embed["color"] == COLOURS[expected.verdict].value
    assert embed["footer"]["text"].startswith(f"{card.name} · checked in ")
    ((name, data),) = followup.files.values()
    assert name == "annotated-1.jpg"
    with Image.open(io.BytesIO(data)) as annotated:
        assert annotated.format == "JPEG"
        assert annotated.size == (expected.width, expected.height)
    (refusal,) = empty.embeds
    assert refusal["color"] == NO_VERDICT.value
    assert refusal["description"] == NoFaceFound.user_message
    assert service.stats.analysed == 1 and service.stats.failed == 1
