"""Pictures with known face boxes, made from the public-domain astronaut sample: the face pasted
at chosen sizes and places into a plain scene, optionally rotated. The known box is HOG's box on
the upright sample (a frontal face HOG finds), carried through the same scaling and rotation."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from detector.faces import Box, FaceFinder
from detector.tools.faceset import rotated

from .conftest import SAMPLES


@functools.cache
def astronaut() -> tuple[Image.Image, Box]:
    img = Image.open(SAMPLES / "astronaut.jpg").convert("RGB")
    return img, FaceFinder().find(np.asarray(img))[0]


def scene_with(
    faces: list[tuple[int, tuple[int, int], float]], size: tuple[int, int] = (1280, 853)
) -> tuple[np.ndarray, list[Box]]:
    """``faces``: (face width px, top-left of the pasted picture, roll degrees) each."""
    canvas = Image.new("RGB", size, (96, 118, 140))
    base, ref = astronaut()
    known = []
    for face_px, (x, y), angle in faces:
        s = face_px / ref.width
        img = base.resize((round(base.width * s), round(base.height * s)), Image.Resampling.LANCZOS)
        box = Box(round(ref.x1 * s), round(ref.y1 * s), round(ref.x2 * s), round(ref.y2 * s))
        if angle:
            img, b = rotated(img, box, angle)
            box = Box(*b)
        canvas.paste(img, (x, y))
        known.append(Box(box.x1 + x, box.y1 + y, box.x2 + x, box.y2 + y))
    return np.asarray(canvas), known
