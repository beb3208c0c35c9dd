"""Face finding and the FF++ crop geometry."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from detector.faces import Box, FaceFinder, FaceFinderOptions, crop_box

from .conftest import SAMPLES


def _rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / name).convert("RGB"))


def ffpp_get_boundingbox(x1: int, y1: int, x2: int, y2: int, width: int, height: int,
                         scale: float = 1.3) -> tuple[int, int, int]:
    """FaceForensics++ detect_from_video.get_boundingbox, verbatim logic (minsize=None)."""
    size_bb = int(max(x2 - x1, y2 - y1) * scale)
    center_x, center_y = (x1 + x2) // 2, (y1 + y2) // 2
    x1 = max(int(center_x - size_bb // 2), 0)
    y1 = max(int(center_y - size_bb // 2), 0)
    size_bb = min(width - x1, size_bb)
    size_bb = min(height - y1, size_bb)
    return x1, y1, size_bb


@pytest.mark.parametrize(
    ("box", "size"),
    [
        ((100, 100, 200, 220), (640, 480)),  # inside
        ((0, 0, 80, 90), (640, 480)),  # touches top-left: moved inside
        ((560, 400, 640, 480), (640, 480)),  # bottom-right: shrunk
        ((10, 300, 300, 479), (320, 480)),  # larger than the room left
        ((5, 5, 6, 6), (20, 20)),  # degenerate
    ],
)
def test_crop_box_matches_ffpp(box: tuple[int, int, int, int], size: tuple[int, int]) -> None:
    w, h = size
    cb = crop_box(Box(*box), w, h, 1.3)
    x1, y1, side = ffpp_get_boundingbox(*box, w, h)
    assert (cb.x1, cb.y1, cb.width, cb.height) == (x1, y1, side, side)
    assert 0 <= cb.x1 <= cb.x2 <= w and 0 <= cb.y1 <= cb.y2 <= h


def test_finds_the_astronaut_face() -> None:
    rgb = _rgb("astronaut.jpg")
    boxes = FaceFinder().find(rgb)
    assert len(boxes) == 1
    b = boxes[0]
    # Eileen Collins' face is in the upper middle of the 512x512 portrait.
    assert 150 < (b.x1 + b.x2) / 2 < 260 and 50 < (b.y1 + b.y2) / 2 < 160
    assert 50 < b.width < 160


def test_boxes_map_back_to_original_pixels() -> None:
    """Detection runs on a downscaled copy; boxes must come back in original coordinates."""
    rgb = _rgb("astronaut.jpg")
    big = np.asarray(Image.fromarray(rgb).resize((2048, 2048), Image.Resampling.BICUBIC))
    small_box = FaceFinder().find(rgb)[0]
    big_box = FaceFinder().find(big)[0]
    for a, b in zip(small_box.as_list(), big_box.as_list(), strict=True):
        assert abs(a * 4 - b) < 40  # same face, 4x the coordinates (detector jitter allowed)


def test_no_face_in_coffee() -> None:
    assert FaceFinder().find(_rgb("coffee.jpg")) == []


def test_every_face_largest_first_and_capped() -> None:
    face = Image.open(SAMPLES / "astronaut.jpg").convert("RGB")
    canvas = Image.new("RGB", (1400, 600), (128, 128, 128))
    for i, side in enumerate((512, 400, 300)):
        canvas.paste(face.resize((side, side)), (10 + i * 470, 0))
    rgb = np.asarray(canvas)
    boxes = FaceFinder().find(rgb)
    assert len(boxes) == 3
    areas = [b.area for b in boxes]
    assert areas == sorted(areas, reverse=True)
    assert boxes[0].x1 < 470 < boxes[1].x1 < 940 < boxes[2].x1
    capped = FaceFinder(FaceFinderOptions(max_faces=2)).find(rgb)
    assert capped == boxes[:2]


def test_tight_face_crop_is_found_with_padding_pass() -> None:
    """Tight crops (profile pictures) leave HOG no margin; the padded pass still finds them."""
    rgb = _rgb("astronaut.jpg")
    b = FaceFinder().find(rgb)[0]
    tight = np.ascontiguousarray(rgb[b.y1 : b.y2, b.x1 : b.x2])
    tight = np.asarray(Image.fromarray(tight).resize((200, 200)))
    boxes = FaceFinder().find(tight)
    assert len(boxes) == 1
    assert boxes[0].width > 100


def test_jpeg_roundtrip_is_irrelevant_to_boxes() -> None:
    rgb = _rgb("astronaut.jpg")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=40)
    again = np.asarray(Image.open(buf).convert("RGB"))
    a, b = FaceFinder().find(rgb)[0], FaceFinder().find(again)[0]
    assert max(abs(x - y) for x, y in zip(a.as_list(), b.as_list(), strict=True)) < 15
