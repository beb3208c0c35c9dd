"""Face boxes and the FaceForensics++ crop.

:class:`Finder` is the one-function boundary the pipeline calls (``find``); which detector
stands behind it is chosen in :mod:`detector.finders`. :class:`FaceFinder` here is dlib's
frontal HOG detector, as FaceForensics++ used: it works on a downscaled grey copy for speed
and maps the boxes back to original pixels. Every finder returns boxes of dlib's geometry, so
``crop_box`` (FF++'s ``get_boundingbox``: a square of ``scale`` x the larger box side, centred
on the face, clipped to the image) gives the crop the classifier was trained on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

import dlib
import numpy as np
import numpy.typing as npt
from PIL import Image

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Box:
    """A face box in original-image pixels, ``x2``/``y2`` exclusive. ``score``: detector margin."""

    x1: int
    y1: int
    x2: int
    y2: int
    score: float = 0.0

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    def as_list(self) -> list[int]:
        return [self.x1, self.y1, self.x2, self.y2]


class Finder(Protocol):
    """What the pipeline needs from a face detector. ``find`` must be safe to call from several
    threads at once, and return boxes in dlib's frontal-detector geometry, largest first."""

    @property
    def name(self) -> str: ...

    def find(self, rgb: npt.NDArray[np.uint8]) -> list[Box]: ...


@dataclass(frozen=True)
class DetectionPass:
    """Run the detector on a copy whose long side is at most ``max_side``, upsampled ``upsample``
    times by dlib (each upsample halves the smallest findable face, ~80 px → ~40 px, and costs
    about 4x the time). ``pad`` adds a border of that fraction of the side first, which lets HOG
    find faces that touch the image edge (tight face crops)."""

    max_side: int
    upsample: int
    pad: float = 0.0


@dataclass(frozen=True)
class FaceFinderOptions:
    # Cheap pass first; the slower ones only run when nothing was found.
    passes: tuple[DetectionPass, ...] = (
        DetectionPass(640, 0),
        DetectionPass(1024, 1),
        DetectionPass(400, 1, pad=0.3),
    )
    max_faces: int = 8
    # dlib's HOG gives low-margin false positives on textures (badges, patterns). The best
    # face is kept at margin >= min_score; further faces need secondary_min_score.
    min_score: float = 0.0
    secondary_min_score: float = 0.3
    min_face_px: int = 24
    # Names the variant (boxes in the face-box cache are keyed by it).
    label: str = "hog"


class FaceFinder:
    """Finds faces with dlib's frontal HOG detector. Safe to call from several threads."""

    def __init__(self, options: FaceFinderOptions | None = None) -> None:
        self.options = options or FaceFinderOptions()
        self._local = threading.local()

    @property
    def name(self) -> str:
        return self.options.label

    def _detector(self) -> dlib.fhog_object_detector:
        det = getattr(self._local, "detector", None)
        if det is None:
            det = dlib.get_frontal_face_detector()
            self._local.detector = det
        return det

    def find(self, rgb: npt.NDArray[np.uint8]) -> list[Box]:
        """Every face, largest first, at most ``max_faces``; empty list when there is none."""
        height, width = rgb.shape[:2]
        gray = Image.fromarray(rgb).convert("L")
        for p in self.options.passes:
            boxes = self._run_pass(gray, width, height, p)
            if boxes:
                return self._select(boxes)
        return []

    def _run_pass(self, gray: Image.Image, width: int, height: int, p: DetectionPass) -> list[Box]:
        scale = min(1.0, p.max_side / max(width, height))
        img = gray
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            img = gray.resize(size, Image.Resampling.BILINEAR)
        pad = round(p.pad * max(img.size)) if p.pad else 0
        arr = np.asarray(img)
        if pad:
            arr = np.pad(arr, pad, mode="edge")
        rects, scores, _ = self._detector().run(arr, p.upsample, 0.0)
        boxes = []
        for rect, score in zip(rects, scores, strict=True):
            x1 = (rect.left() - pad) / scale
            y1 = (rect.top() - pad) / scale
            x2 = (rect.right() + 1 - pad) / scale
            y2 = (rect.bottom() + 1 - pad) / scale
            box = Box(
                max(0, round(x1)),
                max(0, round(y1)),
                min(width, round(x2)),
                min(height, round(y2)),
                float(score),
            )
            if min(box.width, box.height) >= self.options.min_face_px:
                boxes.append(box)
        return boxes

    def _select(self, boxes: list[Box]) -> list[Box]:
        boxes = sorted(boxes, key=lambda b: b.area, reverse=True)
        best = max(b.score for b in boxes)
        if best < self.options.min_score:
            return []
        kept = [
            b
            for b in boxes
            if b.score == best or b.score >= self.options.secondary_min_score
        ]
        return kept[: self.options.max_faces]


def crop_box(box: Box, width: int, height: int, scale: float = 1.3) -> Box:
    """FaceForensics++ ``get_boundingbox``: square side ``int(max(w, h) * scale)`` centred on the
    face, moved inside the image at the top/left and shrunk (still square) where it would
    cross the right/bottom edge, exactly as FF++ does."""
    size = int(max(box.width, box.height) * scale)
    cx = (box.x1 + box.x2) // 2
    cy = (box.y1 + box.y2) // 2
    x1 = max(int(cx - size // 2), 0)
    y1 = max(int(cy - size // 2), 0)
    size = min(width - x1, size)
    size = min(height - y1, size)
    return Box(x1, y1, x1 + size, y1 + size, box.score)
