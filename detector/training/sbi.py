"""Landmark-guided Self-Blended Images (Shiohara & Yamasaki, CVPR 2022), a training tool.

A real face is blended with a colour-, sharpness- and scale-shifted copy of itself inside a
mask taken from the convex hull of its 68 facial landmarks, deformed and feathered. The result
carries a face swap's blending boundary and statistical mismatch without any change of identity,
so the detector learns the traces of blending rather than the look of one data set.

Landmarks come from dlib's 68-point predictor shipped in PyPI ``face-recognition-models`` (CC0
package; the model was trained on iBUG 300-W, whose terms exclude commercial use: it is used to
make training data only and never ships with the detector). They are computed once per image
and cached on disk next to the face boxes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter

from detector.faces import Box
from detector.images import ImageLimits, decode_image
from detector.training.augment import blend, colour_mismatch, paste_misaligned

_log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float32]  # (68, 2) x, y


def packaged_model(name: str) -> Path | None:
    """A model file of the ``face-recognition-models`` package, if installed. Found without
    importing the package (its ``__init__`` needs setuptools' ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "models" / name
        if path.is_file():
            return path
    return None


def predictor_path() -> Path | None:
    """dlib's 68-point landmark model, if installed."""
    return packaged_model("shape_predictor_68_face_landmarks.dat")


def face_rect(crop: Box) -> Box:
    """The detector box inside an FF++ 1.3x crop (the crop is centred on it)."""
    side = crop.width / 1.3
    cx, cy = (crop.x1 + crop.x2) / 2, (crop.y1 + crop.y2) / 2
    half = side / 2
    return Box(round(cx - half), round(cy - half), round(cx + half), round(cy + half))


class LandmarkFinder:
    """68 landmarks inside a face box; one dlib predictor per thread."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self._local = threading.local()

    def __call__(self, rgb: U8, box: Box) -> Points:
        import dlib

        predictor = getattr(self._local, "predictor", None)
        if predictor is None:
            predictor = dlib.shape_predictor(str(self.model))
            self._local.predictor = predictor
        rect = dlib.rectangle(box.x1, box.y1, box.x2 - 1, box.y2 - 1)
        shape = predictor(np.ascontiguousarray(rgb), rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


class LandmarkCache:
    """Landmarks per (image bytes, crop box), as JSON lines, so they are found once."""

    VERSION = 1

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.file = directory / f"landmarks-v{self.VERSION}.jsonl"
        self._entries: dict[str, Points] = {}
        if self.file.exists():
            with self.file.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        raw = json.loads(line)
                        self._entries[raw["key"]] = np.array(raw["points"], dtype=np.float32)
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line: recompute that entry
        self._lock = threading.Lock()

    def landmarks(
        self,
        items: Sequence[tuple[Path, Box]],
        finder: LandmarkFinder,
        limits: ImageLimits | None = None,
        workers: int = 2,
        progress: Callable[[int], object] | None = None,
    ) -> list[Points]:
        limits = limits or ImageLimits()

        def one(item: tuple[Path, Box]) -> Points:
            path, crop = item
            data = path.read_bytes()
            key = f"{hashlib.sha256(data).hexdigest()}:{crop.as_list()}"
            cached = self._entries.get(key)
            if cached is None:
                cached = finder(decode_image(data, limits).rgb, face_rect(crop))
                with self._lock:
                    self._entries[key] = cached
                    with self.file.open("a", encoding="utf-8") as fh:
                        row = {"key": key, "points": cached.round(1).tolist()}
                        fh.write(json.dumps(row) + "\n")
            if progress is not None:
                progress(1)
            return cached

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(one, items))


def to_crop(points: Points, crop: Box, size: int) -> Points:
    """Landmarks in original pixels → coordinates in the ``size`` x ``size`` model crop."""
    scale = np.array([size / crop.width, size / crop.height], dtype=np.float32)
    return (points - np.array([crop.x1, crop.y1], dtype=np.float32)) * scale


def convex_hull(points: Points) -> Points:
    """Andrew's monotone chain; counter-clockwise, no repeated end point."""
    pts = sorted({(float(x), float(y)) for x, y in points})
    if len(pts) < 3:
        return np.array(pts, dtype=np.float32)

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], dtype=np.float32)


def landmark_mask(points: Points, size: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """The SBI blending mask: the landmarks' convex hull, deformed (per-vertex jitter, an
    anisotropic scale about its centre, a random grow or shrink) and feathered; in [0, 1]."""
    hull = convex_hull(points)
    centre = hull.mean(axis=0)
    scale = rng.uniform(0.9, 1.08, size=2).astype(np.float32)
    jitter = rng.normal(0.0, 0.012 * size, size=hull.shape).astype(np.float32)
    poly = (hull - centre) * scale + centre + jitter
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in poly], fill=255)
    grow = int(rng.integers(-2, 3)) * 2 + 1  # odd kernel, sign picks dilate or erode
    if abs(grow) > 1:
        img = img.filter(ImageFilter.MaxFilter(grow) if grow > 0 else ImageFilter.MinFilter(-grow))
    radius = float(rng.uniform(0.015, 0.07) * size)
    img = img.filter(ImageFilter.GaussianBlur(radius=radius))
    return np.asarray(img, dtype=np.float32) / 255.0


def _source_transform(rgb: U8, rng: np.random.Generator) -> U8:
    """SBI's source-target augmentation: colour, sharpness/resolution and a small scale/shift."""
    size = rgb.shape[0]
    img = colour_mismatch(Image.fromarray(rgb), rng, 0.12, 10)
    kind = rng.random()
    if kind < 0.35:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.2))))
    elif kind < 0.7:
        img = img.filter(ImageFilter.UnsharpMask(radius=2, percent=int(rng.integers(40, 150))))
    else:  # resolution mismatch: down and up again
        small = max(8, int(size * rng.uniform(0.4, 0.8)))
        img = img.resize((small, small), Image.Resampling.BILINEAR).resize(
            (size, size), Image.Resampling.BILINEAR
        )
    return paste_misaligned(rgb, img, rng, 0.04, 0.02)


def landmark_self_blend(rgb: U8, points: Points, rng: np.random.Generator) -> U8:
    """A self-blended pseudo-fake of a real face crop, masked by its landmarks (crop pixels)."""
    source = _source_transform(rgb, rng)
    return blend(rgb, source, landmark_mask(points, rgb.shape[0], rng), rng)
