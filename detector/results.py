"""Result types of an analysis: per-face scores and the image verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detector.config import Band
from detector.faces import Box

# Faces narrower than this (box width in original pixels) are reported but not scored: the
# classifier's AUC on val faces shrunk to this width (BENCHMARKS.md, "Too small to judge").
MIN_JUDGE_PX = 40


@dataclass(frozen=True)
class FaceResult:
    box: Box  # the detected face, original-image pixels
    crop: Box  # the region fed to the model (FF++ 1.3x square)
    p_fake: float
    band: Band

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box.as_list(),
            "p_fake": round(self.p_fake, 4),
            "verdict": self.band.value,
        }


@dataclass(frozen=True)
class Analysis:
    """What the detector says about one image. ``faces`` is never empty: an image without a
    face raises :class:`detector.errors.NoFaceFound` instead of getting a score."""

    faces: tuple[FaceResult, ...]
    width: int
    height: int
    model: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    annotated_jpeg: bytes | None = field(default=None, repr=False)
    # Faces found but too small to judge (not scored), largest first.
    too_small: tuple[Box, ...] = ()

    @property
    def top(self) -> FaceResult:
        """The most suspicious face: it decides the image verdict."""
        return max(self.faces, key=lambda f: f.p_fake)

    @property
    def p_fake(self) -> float:
        return self.top.p_fake

    @property
    def verdict(self) -> Band:
        return self.top.band

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "p_fake": round(self.p_fake, 4),
            "faces": [f.to_dict() for f in self.faces],
            "too_small": [b.as_list() for b in self.too_small],
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }
