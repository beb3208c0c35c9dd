"""Rotated passes around any finder: when the upright picture yields no face, try it turned by
each angle and turn the boxes back (a box keeps its size; its centre is rotated back)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PIL import Image

from detector.faces import Box, Finder
from detector.finders.common import clipped, largest_first, suppress


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
        found: list[Box] = []
        for angle in self.angles:
            turned = Image.fromarray(rgb).rotate(angle, Image.Resampling.BILINEAR, expand=True)
            tw, th = turned.size
            a = math.radians(angle)  # PIL turns counter-clockwise; undo it about the centre
            for b in self.inner.find(np.asarray(turned)):
                dx, dy = (b.x1 + b.x2) / 2 - tw / 2, (b.y1 + b.y2) / 2 - th / 2
                cx = width / 2 + dx * math.cos(a) - dy * math.sin(a)
                cy = height / 2 + dx * math.sin(a) + dy * math.cos(a)
                hw, hh = b.width / 2, b.height / 2
                found.append(clipped(cx - hw, cy - hh, cx + hw, cy + hh, width, height, b.score))
        return largest_first(suppress(found), self.max_faces, 1)
