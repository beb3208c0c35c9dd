"""bench-faces' scoring: one-to-one matching, false detections only on made-up scene pixels,
and the report; plus making a small check set from the labelled data when it is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.faces import Box
from detector.finders import make_finder
from detector.tools.face_bench import Tally, render, run_set, score_picture
from detector.tools.faceset import Picture, load_set, make_set

from .conftest import REPO

MANIFEST = REPO.parent / "shared" / "data" / "faces" / "manifest.csv"


def test_matches_one_to_one_and_splits_false_from_unlabelled() -> None:
    picture = Picture("p.jpg", "group", "photo", [[100, 100, 200, 200], [400, 100, 480, 180]],
                      [[50, 50, 250, 250], [350, 50, 500, 200]])  # fmt: skip
    tally = Tally()
    boxes = [
        Box(105, 95, 205, 210),  # the first face, MTCNN-shaped
        Box(102, 98, 198, 202),  # the first face again: not a second hit
        Box(900, 500, 980, 580),  # on scene pixels: false
    ]
    score_picture(tally, picture, boxes)
    assert tally.total["group"] == 2 and tally.found["group"] == 1
    assert tally.found["target"] == 1 and tally.total["target"] == 2
    assert tally.false == 1 and tally.unlabelled == 1


def test_report_lists_every_finder_and_the_unavailable_ones() -> None:
    picture = Picture("p.jpg", "none", "photo", [], [])
    tally = Tally()
    score_picture(tally, picture, [])
    tally.ms.append(3.0)
    lines = render({"hog": tally, "x": "not available: no package"}, {"hog": 5.0},
                   {"hog": 7.0}, [picture], "test machine")  # fmt: skip
    text = "\n".join(lines)
    assert "| hog |" in text and "| x | not available: no package |" in text
    assert "5 ms" in text and "7 ms" in text


@pytest.mark.data
@pytest.mark.slow
def test_makes_a_check_set_with_known_boxes(tmp_path: Path) -> None:
    if not MANIFEST.exists():
        pytest.skip(f"labelled data not present at {MANIFEST}")
    index, counts = make_set(MANIFEST, tmp_path, make_finder("hog-up"), make_finder("mtcnn"),
                             sources=4, template_crops=10)  # fmt: skip
    pictures = load_set(index)
    assert counts["dfdc"] == 2 and counts["photo"] == 2
    assert {p.category for p in pictures} >= {"original", "mirrored", "jpeg", "small", "scene",
                                               "group", "none"}  # fmt: skip
    assert all((tmp_path / p.path).is_file() for p in pictures)
    assert json.loads(index.read_text())[0]["faces"]
    tally = run_set(make_finder(), pictures, tmp_path)
    assert tally.pictures == len(pictures) and tally.false == 0
