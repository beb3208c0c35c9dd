"""Result types and limits of a video check: per-face tracks over time and the video verdict.

Light (no torch, no PyAV), so ``bot.core`` may take them like :mod:`detector.results`.

A video is judged face by face over time. Each *track* is one face followed across the sampled
frames; its served score is the **mean P(fake) over its frames**, the FaceForensics++ video-level
rule (Rössler et al. 2019 average the frame predictions of a video). ``p_max`` and
``p_top_mean`` (mean of the top third of frames) are reported beside it: a swap that shows in a
few frames only pulls the maximum up before the mean, and a single noisy frame does the same to a
real clip, which is why the mean is served (weights/MODEL_CARD.md, "Video"). The video verdict
follows the most suspicious track that was seen in at least ``min_track_frames`` frames.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from detector.config import Band
from detector.faces import Box

# Which per-track statistic the verdict uses, named in every result so scripts can tell.
SERVED_RULE = "mean"


@dataclass(frozen=True)
class VideoLimits:
    """Bounds a video must respect. Resolution and duration are read from the container header
    before any frame is decoded; ``decode_timeout_s`` bounds the decoding itself."""

    max_bytes: int = 20 * 1024 * 1024  # Telegram's bot download limit
    max_duration_s: float = 120.0
    max_pixels: int = 1920 * 1080
    # Frames sampled, spread evenly over the clip; the first frame after a scene cut is taken
    # too, up to a quarter more.
    max_frames: int = 32
    decode_timeout_s: float = 30.0
    # Frames are scaled down to this long side before faces are looked for (bounds memory:
    # at most 1.25 x max_frames of them are kept).
    work_side: int = 1280
    min_track_frames: int = 2

    def __post_init__(self) -> None:
        if self.max_frames < 1 or self.max_duration_s <= 0 or self.max_pixels < 1:
            raise ValueError("video limits must be positive")


@dataclass(frozen=True)
class TrackFrame:
    """One sighting of a tracked face: when, where (original pixels) and its P(fake)."""

    t_s: float
    box: Box
    p_fake: float


@dataclass(frozen=True)
class TrackResult:
    """One face followed over the clip. ``sightings`` is in time order and never empty."""

    number: int  # 1-based, in order of first appearance
    sightings: tuple[TrackFrame, ...]
    band: Band
    high: float  # the band's "likely manipulated" threshold, for share_fake

    @property
    def scores(self) -> list[float]:
        return [s.p_fake for s in self.sightings]

    @property
    def frames(self) -> int:
        return len(self.sightings)

    @property
    def p_fake(self) -> float:
        """The served score: mean P(fake) over the track's frames (FF++ rule)."""
        return statistics.fmean(self.scores)

    @property
    def p_max(self) -> float:
        return max(self.scores)

    @property
    def p_median(self) -> float:
        return statistics.median(self.scores)

    @property
    def p_top_mean(self) -> float:
        """Mean of the top third of frames (at least one)."""
        top = sorted(self.scores, reverse=True)[: max(1, math.ceil(len(self.scores) / 3))]
        return statistics.fmean(top)

    @property
    def share_fake(self) -> float:
        """Share of the track's frames judged likely manipulated on their own."""
        return sum(p >= self.high for p in self.scores) / len(self.scores)

    @property
    def first_s(self) -> float:
        return self.sightings[0].t_s

    @property
    def last_s(self) -> float:
        return self.sightings[-1].t_s

    def boxes_sample(self, n: int = 4) -> list[dict[str, Any]]:
        """Up to ``n`` sightings spread over the track, for scripts that want to draw it."""
        k = len(self.sightings)
        picks = sorted({round(i * (k - 1) / max(n - 1, 1)) for i in range(min(n, k))})
        return [
            {"t_s": round(self.sightings[i].t_s, 3), "box": self.sightings[i].box.as_list()}
            for i in picks
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "track": self.number,
            "verdict": self.band.value,
            "p_fake": round(self.p_fake, 4),
            "p_max": round(self.p_max, 4),
            "p_median": round(self.p_median, 4),
            "p_top_mean": round(self.p_top_mean, 4),
            "share_fake": round(self.share_fake, 4),
            "frames": self.frames,
            "first_s": round(self.first_s, 3),
            "last_s": round(self.last_s, 3),
            "boxes_sample": self.boxes_sample(),
            "frame_scores": [[round(s.t_s, 3), round(s.p_fake, 4)] for s in self.sightings],
        }


@dataclass(frozen=True)
class VideoAnalysis:
    """What the detector says about one video or animation. ``tracks`` is never empty: a clip
    without a face in any sampled frame raises :class:`detector.errors.NoFaceInVideo`."""

    tracks: tuple[TrackResult, ...]
    deciding: int  # index into tracks of the track that sets the verdict
    width: int
    height: int
    duration_s: float
    frames_sampled: int
    frames_with_faces: int
    container: str
    model: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    contact_sheet_jpeg: bytes | None = field(default=None, repr=False)
    too_small: int = 0  # sightings of faces too small to judge (not scored)

    kind = "video"

    @property
    def top(self) -> TrackResult:
        return self.tracks[self.deciding]

    @property
    def p_fake(self) -> float:
        return self.top.p_fake

    @property
    def verdict(self) -> Band:
        return self.top.band

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "verdict": self.verdict.value,
            "p_fake": round(self.p_fake, 4),
            "rule": SERVED_RULE,
            "deciding_track": self.top.number,
            "tracks": [t.to_dict() for t in self.tracks],
            "frames_sampled": self.frames_sampled,
            "frames_with_faces": self.frames_with_faces,
            "faces_too_small": self.too_small,
            "duration_s": round(self.duration_s, 3),
            "width": self.width,
            "height": self.height,
            "container": self.container,
            "model": self.model,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }
