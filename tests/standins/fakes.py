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


Script = Callable[[bytes], Analysis | BaseException]


@dataclass
class FakeDetector:
    """Answers from ``script(data)``; with ``hold`` cleared, every analysis waits for it."""

    script: Script
    model_name: str = FAKE_CONFIG.name

    def __post_init__(self) -> None:
        self.seen: list[bytes] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.entered = asyncio.Event()
        self.closed = False
        self.closed_at = 0.0
        self.in_flight = 0

    async def analyze(self, data: bytes, *, annotate: bool = False) -> Analysis:
        self.seen.append(data)
        self.in_flight += 1
        self.entered.set()
        try:
            await self.hold.wait()
            result = self.script(data)
        finally:
            self.in_flight -= 1
        if isinstance(result, BaseException):
            raise result
        if annotate:
            result = replace(result, annotated_jpeg=ANNOTATED)
        return result

    async def close(self) -> None:
        assert self.in_flight == 0, "detector closed while analyses were in flight"
        self.closed = True
        self.closed_at = time.monotonic()


def always(result: Analysis | BaseException) -> Script:
    return lambda data: result
