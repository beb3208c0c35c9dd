"""Fakes every test shares: a scripted stand-in for the detector (``FakeDetector``: results
and errors from a script, an optional gate to hold analyses in flight), analyses banded like a
real config, and small JPEGs. Tests about the whole path use the real detector service with the
tiny generated checkpoint instead."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from PIL import Image

from detector.config import ModelConfig
from detector.faces import Box
from detector.results import Analysis, FaceResult
from detector.video_results import TrackFrame, TrackResult, VideoAnalysis

FAKE_CONFIG = ModelConfig(name="fake detector (tests)", thresholds=(0.3, 0.7))


def jpeg(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="JPEG")
    return buf.getvalue()


ANNOTATED = jpeg(80, 60, (10, 200, 10))  # what the fake "draws"


def analysis(*p_fakes: float, width: int = 900, height: int = 600) -> Analysis:
    """An analysis with one face per score, left to right, banded like a real config."""
    faces = []
    step = width // max(len(p_fakes), 1)
    for i, p in enumerate(p_fakes):
        box = Box(i * step + 10, 100, i * step + step - 10, 100 + step - 20)
        faces.append(FaceResult(box, box, p, FAKE_CONFIG.band(p)))
    return Analysis(tuple(faces), width, height, FAKE_CONFIG.name)


def video_analysis(
    *tracks: list[float], fps: float = 4.0, container: str = "mp4"
) -> VideoAnalysis:
    """A video with one track per score list (one score per sampled frame, ``fps`` apart),
    the faces side by side, banded like a real config; the worst track decides."""
    results = []
    for n, scores in enumerate(tracks, start=1):
        box = Box(100 * n, 50, 100 * n + 80, 130)
        sightings = tuple(TrackFrame(i / fps, box, p) for i, p in enumerate(scores))
        mean = sum(scores) / len(scores)
        results.append(TrackResult(n, sightings, FAKE_CONFIG.band(mean), FAKE_CONFIG.thresholds[1]))
    frames = max(len(t) for t in tracks)
    deciding = max(range(len(results)), key=lambda i: results[i].p_fake)
    return VideoAnalysis(
        tuple(results), deciding, 640, 360, frames / fps, frames, frames, container,
        FAKE_CONFIG.name,
    )


Result = Analysis | VideoAnalysis
Script = Callable[[bytes], Result | BaseException]


@dataclass
class FakeDetector:
    """Answers from ``script(data)``; with ``hold`` cleared, every analysis waits for it."""

    script: Script
    model_name: str = FAKE_CONFIG.name

    def __post_init__(self) -> None:
        self.seen: list[bytes] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.step = asyncio.Event()  # between a scripted video's progress reports
        self.step.set()
        self.entered = asyncio.Event()
        self.closed = False
        self.closed_at = 0.0
        self.in_flight = 0

    async def analyze(self, data: bytes, *, annotate: bool = False) -> Analysis:
        result = await self.analyze_media(data, annotate=annotate)
        assert isinstance(result, Analysis), "the script answered a video to analyze()"
        return result

    async def analyze_media(
        self,
        data: bytes,
        *,
        annotate: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Result:
        """Like the service: a scripted video reports each of its frames to ``on_progress``,
        waiting for ``step`` (set: no wait) before each."""
        self.seen.append(data)
        self.in_flight += 1
        self.entered.set()
        try:
            await self.hold.wait()
            result = self.script(data)
            if isinstance(result, VideoAnalysis) and on_progress is not None:
                for k in range(1, result.frames_sampled + 1):
                    await self.step.wait()
                    on_progress(k, result.frames_sampled)
                    await asyncio.sleep(0)
        finally:
            self.in_flight -= 1
        if isinstance(result, BaseException):
            raise result
        if annotate and isinstance(result, VideoAnalysis):
            return replace(result, contact_sheet_jpeg=ANNOTATED)
        if annotate and isinstance(result, Analysis):
            result = replace(result, annotated_jpeg=ANNOTATED)
        return result

    async def close(self) -> None:
        assert self.in_flight == 0, "detector closed while analyses were in flight"
        self.closed = True
        self.closed_at = time.monotonic()


def always(result: Result | BaseException) -> Script:
    return lambda data: result
