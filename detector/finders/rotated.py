"""Rotated passes around any finder: when the upright picture yields no face, try it turned by
each angle and turn the boxes back (a box keeps its size; its centre is rotated back).

The picture is shrunk to at most ``MAX_TURNED_SIDE`` px before it is turned: a turned canvas
grows to (w + h)·sin/cos, and a 686-byte 12000x16 PNG turned by 30° at full size needed about
500 MB (RELIABILITY.md). MTCNN, the served inner finder, looks at no more than 800 px anyway, so
it sees the same scale either way."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PIL import Image

from detector.faces import Box, Finder
from detector.finders.common import clipped, largest_first, suppress

MAX_TURNED_SIDE = 1600


class RotatedPasses:
    def __init__(
        self, inner: Finder, angles: tuple[float, ...], max_faces: int = 8, name: str = ""
    ) -> None:
        self.inner = inner
        self._name = name or f"{inner.name}-rot"
        self.angles = angles
        self.max_faces = max_faces

    @property
    def name(self) -> str:
        return self._name

    def find(self, rgb: npt.NDArray[np.uint8]) -> list[Box]:
        boxes = self.inner.find(rgb)
        if boxes:
            return boxes
        height, width = rgb.shape[:2]
        k = min(1.0, MAX_TURNED_SIDE / max(height, width))  # working scale
        picture = Image.fromarray(rgb)
        if k < 1.0:
            size = (max(1, round(width * k)), max(1, round(height * k)))
            picture = picture.resize(size, Image.Resampling.BILINEAR)
        sw, sh = picture.size
        found: list[Box] = []
        for angle in self.angles:
            turned = picture.rotate(angle, Image.Resampling.BILINEAR, expand=True)
            tw, th = turned.size
            a = math.radians(angle)  # PIL turns counter-clockwise; undo it about the centre
            for b in self.inner.find(np.asarray(turned)):
                dx, dy = (b.x1 + b.x2) / 2 - tw / 2, (b.y1 + b.y2) / 2 - th / 2
                cx = (sw / 2 + dx * math.cos(a) - dy * math.sin(a)) / k
                cy = (sh / 2 + dx * math.sin(a) + dy * math.cos(a)) / k
                hw, hh = b.width / 2 / k, b.height / 2 / k
                found.append(clipped(cx - hw, cy - hh, cx + hw, cy + hh, width, height, b.score))
        return largest_first(suppress(found), self.max_faces, 1)
