"""Faces too small to judge: found and reported (count and boxes), never scored, through the
pipeline, ``check --json``, the annotated picture and a Telegram reply from the real detector."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.core import ModelCard
from bot.core.replies import Problem, error_reply, too_small_line
from bot.main import build_pipeline, main
from detector.errors import FacesTooSmall, NoFaceFound
from detector.model import Classifier
from detector.pipeline import Pipeline
from detector.results import MIN_JUDGE_PX
from detector.service import DetectorService

from .face_scenes import scene_with
from .standins.telegram_api import TelegramStandIn
from .standins.telegram_harness import running_bot, settings_for

pytest_plugins = ["tests.standins.telegram_fixtures"]

SIZE = (900, 600)  # small enough that a 30 px face stays findable by the served finder


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture(scope="module")
def big_and_small() -> bytes:
    rgb, _ = scene_with([(150, (60, 80), 0), (MIN_JUDGE_PX - 10, (650, 300), 0)], SIZE)
    return _jpeg(rgb)


@pytest.fixture(scope="module")
def only_small() -> bytes:
    rgb, _ = scene_with(
        [(MIN_JUDGE_PX - 10, (100, 200), 0), (MIN_JUDGE_PX - 8, (600, 250), 0)], SIZE
    )
    return _jpeg(rgb)


def test_small_face_is_counted_not_scored(
    tiny_classifier: Classifier, big_and_small: bytes
) -> None:
    analysis = Pipeline(tiny_classifier).analyze(big_and_small, annotate=True)
    assert len(analysis.faces) == 1 and analysis.faces[0].box.width >= MIN_JUDGE_PX
    assert len(analysis.too_small) == 1 and analysis.too_small[0].width < MIN_JUDGE_PX
    assert analysis.to_dict()["too_small"] == [analysis.too_small[0].as_list()]
    # The annotated picture marks the small face too (grey, "too small").
    assert analysis.annotated_jpeg is not None
    with Image.open(io.BytesIO(analysis.annotated_jpeg)) as img:
        b = analysis.too_small[0]
        edge = np.asarray(img.convert("RGB"))[b.y1 + 2, b.x1 : b.x1 + 2]
    assert np.abs(edge.astype(int) - (149, 165, 166)).max() < 40


def test_only_small_faces_is_an_answer_not_a_score(
    tiny_classifier: Classifier, only_small: bytes
) -> None:
    with pytest.raises(FacesTooSmall) as info:
        Pipeline(tiny_classifier).analyze(only_small)
    assert info.value.count == 2
    assert isinstance(info.value, NoFaceFound)  # callers that only know "no face" still refuse
    refusal = error_reply(info.value)
    assert refusal.problem is Problem.FACES_TOO_SMALL
    assert "found 2 faces" in refusal.message and "too small to judge" in refusal.message
    assert "%" not in refusal.message


def test_check_json_reports_the_count(
    tiny_checkpoint: Path, tmp_path: Path, big_and_small: bytes, only_small: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    (tmp_path / "mixed.jpg").write_bytes(big_and_small)
    (tmp_path / "small.jpg").write_bytes(only_small)
    code = main(["check", str(tmp_path), "--json", "--weights", str(tiny_checkpoint)])
    assert code == 1  # small.jpg got no verdict
    lines = capsys.readouterr().out.splitlines()
    rows = {Path(r["path"]).name: r for r in map(json.loads, lines)}
    mixed, small = rows["mixed.jpg"], rows["small.jpg"]
    assert mixed["verdict"] is not None and len(mixed["faces"]) == 1
    assert mixed["faces_too_small"] == 1 and len(mixed["too_small"]) == 1
    assert small["verdict"] is None and small["p_fake"] is None and small["faces"] == []
    assert small["faces_too_small"] == 2 and "too small to judge" in small["error"]


async def test_telegram_reply_says_how_many_were_too_small(
    standin: TelegramStandIn, tiny_checkpoint: Path, big_and_small: bytes, only_small: bytes
) -> None:
    settings = settings_for(
        standin, deepfake_bot_weights=tiny_checkpoint, detector_precision="fp32",
        detector_threads=2,
    )  # fmt: skip
    pipeline = build_pipeline(settings)
    service = DetectorService(pipeline)
    card = ModelCard.from_config(pipeline.classifier.config)
    async with running_bot(settings, service, card=card):
        user = standin.user()
        chat = standin.private_chat(user)
        photo = standin.photo_sizes(standin.add_file(big_and_small))
        mixed = standin.message(chat, user, photo=photo)
        await standin.push_update({"message": mixed})
        sent = await standin.wait_for("sendPhoto")
        photo = standin.photo_sizes(standin.add_file(only_small))
        small = standin.message(chat, user, photo=photo)
        await standin.push_update({"message": small})
        refused = await standin.wait_for(
            "sendMessage", where=lambda c: c.reply_to == small["message_id"]
        )
    assert too_small_line(1) in sent.text.splitlines()
    assert "probability of a face manipulation" in sent.text.splitlines()[0]
    assert "found 2 faces" in refused.text and "too small to judge" in refused.text
    assert "%" not in refused.text
