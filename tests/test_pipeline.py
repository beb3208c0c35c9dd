"""The synchronous pipeline on real images with a real (tiny, untrained) Xception."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from detector.config import Band
from detector.errors import NoFaceFound, UnsupportedImage
from detector.model import Classifier
from detector.pipeline import Pipeline
from detector.preprocess import face_crop

from .conftest import TINY_CONFIG, encode


def test_astronaut_gets_one_scored_face(tiny_classifier: Classifier, astronaut_jpeg: bytes) -> None:
    analysis = Pipeline(tiny_classifier).analyze(astronaut_jpeg)
    assert len(analysis.faces) == 1
    face = analysis.faces[0]
    assert 0.0 <= face.p_fake <= 1.0
    assert face.band is TINY_CONFIG.band(face.p_fake)
    assert analysis.verdict is face.band and analysis.p_fake == face.p_fake
    assert (analysis.width, analysis.height) == (512, 512)
    # The crop is the FF++ 1.3x square around the detected box.
    assert face.crop.width == face.crop.height
    assert face.crop.width == int(max(face.box.width, face.box.height) * 1.3)
    assert {"decode", "faces", "crop", "model", "total"} <= set(analysis.timings_ms)


def test_score_equals_classifier_on_the_same_crop(
    tiny_classifier: Classifier, astronaut_jpeg: bytes
) -> None:
    pipeline = Pipeline(tiny_classifier)
    analysis = pipeline.analyze(astronaut_jpeg)
    rgb = np.asarray(Image.open(io.BytesIO(astronaut_jpeg)).convert("RGB"))
    crop, _ = face_crop(rgb, analysis.faces[0].box, TINY_CONFIG)
    assert tiny_classifier.predict(crop[None])[0] == pytest.approx(analysis.p_fake, abs=1e-6)


def test_no_face_is_an_error_not_a_score(tiny_classifier: Classifier, coffee_jpeg: bytes) -> None:
    with pytest.raises(NoFaceFound) as info:
        Pipeline(tiny_classifier).analyze(coffee_jpeg)
    assert "face" in info.value.user_message


def test_image_verdict_is_the_most_suspicious_face(
    tiny_classifier: Classifier, astronaut_jpeg: bytes
) -> None:
    face = Image.open(io.BytesIO(astronaut_jpeg)).convert("RGB")
    canvas = Image.new("RGB", (1100, 520), (90, 90, 90))
    canvas.paste(face, (0, 0))
    canvas.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((440, 440)), (600, 40))
    analysis = Pipeline(tiny_classifier).analyze(encode(np.asarray(canvas), "PNG"))
    assert len(analysis.faces) == 2
    assert analysis.p_fake == max(f.p_fake for f in analysis.faces)
    assert analysis.faces[0].box.area >= analysis.faces[1].box.area


def test_analyze_many_keeps_going_past_bad_inputs(
    tiny_classifier: Classifier, astronaut_jpeg: bytes, coffee_jpeg: bytes
) -> None:
    pipeline = Pipeline(tiny_classifier)
    out = pipeline.analyze_many([astronaut_jpeg, b"not an image", coffee_jpeg, astronaut_jpeg])
    assert isinstance(out[1], UnsupportedImage)
    assert isinstance(out[2], NoFaceFound)
    single = pipeline.analyze(astronaut_jpeg).p_fake
    assert out[0].p_fake == pytest.approx(single, abs=1e-6)  # type: ignore[union-attr]
    assert out[3].p_fake == pytest.approx(single, abs=1e-6)  # type: ignore[union-attr]


def test_full_frame_family_scores_the_whole_picture(
    tiny_module: object, astronaut_jpeg: bytes
) -> None:
    cfg = TINY_CONFIG.replace(crop_mode="full")
    clf = Classifier(tiny_module, cfg)  # type: ignore[arg-type]
    analysis = Pipeline(clf).analyze(astronaut_jpeg)
    assert len(analysis.faces) == 1
    assert analysis.faces[0].crop.as_list() == [0, 0, 512, 512]


def test_annotated_image_marks_the_face(tiny_classifier: Classifier, astronaut_jpeg: bytes) -> None:
    analysis = Pipeline(tiny_classifier).analyze(astronaut_jpeg, annotate=True)
    assert analysis.annotated_jpeg is not None
    out = Image.open(io.BytesIO(analysis.annotated_jpeg))
    assert out.format == "JPEG" and out.size == (512, 512)
    original = np.asarray(Image.open(io.BytesIO(astronaut_jpeg)).convert("RGB")).astype(int)
    drawn = np.asarray(out.convert("RGB")).astype(int)
    b = analysis.faces[0].box
    edge = np.abs(drawn[b.y1 + 5 : b.y2 - 5, b.x1] - original[b.y1 + 5 : b.y2 - 5, b.x1]).mean()
    far = np.abs(drawn[-20:, -20:] - original[-20:, -20:]).mean()
    assert edge > 40 > far  # the box line is drawn; the rest is (re-encoded but) unchanged


def test_bands_follow_config_thresholds() -> None:
    assert TINY_CONFIG.band(0.0) is Band.REAL
    assert TINY_CONFIG.band(0.3) is Band.UNCERTAIN
    assert TINY_CONFIG.band(0.6999) is Band.UNCERTAIN
    assert TINY_CONFIG.band(0.7) is Band.FAKE
