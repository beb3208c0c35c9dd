"""Images and videos are analysed in memory and never written to disk (issue 16; the page and
the bots promise it). Running as root, a read-only folder proves nothing (root writes anyway),
so the proof is Python's audit hook: every ``open`` the process makes for writing while
``POST /v1/check`` answers a picture and a clip, annotated, with the real detector (tiny
checkpoint, served face finder) is recorded, and there must be none. A control shows the hook
sees a write."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest

from bot.core import ModelCard
from bot.main import build_pipeline
from detector.pipeline import Pipeline
from detector.service import DetectorService

from .standins.web_harness import WebRun, running_web, web_settings
from .video_clips import encode_video, moving_face

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class _Writes:
    """Write-opens seen by the (process-wide, permanent) audit hook while ``recording``."""

    def __init__(self) -> None:
        self.recording = False
        self.seen: list[str] = []

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.recording or event != "open":
            return
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writing:
            self.seen.append(str(path))

    @contextmanager
    def watch(self) -> Iterator[list[str]]:
        self.seen = []
        self.recording = True
        try:
            yield self.seen
        finally:
            self.recording = False


_WRITES = _Writes()
sys.addaudithook(_WRITES.hook)


@pytest.fixture()
def pipeline(tiny_checkpoint: Path) -> Pipeline:
    settings = web_settings(deepfake_bot_weights=tiny_checkpoint, detector_precision="fp32")
    return build_pipeline(settings)


@pytest.fixture()
async def run(pipeline: Pipeline) -> AsyncIterator[WebRun]:
    detector = DetectorService(pipeline)
    async with running_web(detector, card=ModelCard.from_config(pipeline.classifier.config)) as r:
        yield r


async def _post(run: WebRun, data: bytes, content_type: str) -> int:
    async with aiohttp.ClientSession() as http, http.post(
        f"{run.url}/v1/check?annotate=1", data=data, headers={"Content-Type": content_type}
    ) as r:
        await r.read()
        return r.status


def test_the_hook_sees_a_write(tmp_path: Path) -> None:
    """Control: a plain write inside the window is recorded."""
    with _WRITES.watch() as seen:
        (tmp_path / "written.bin").write_bytes(b"x")
    assert any(p.endswith("written.bin") for p in seen)


async def test_checking_a_picture_and_a_clip_writes_nothing(
    run: WebRun, astronaut_jpeg: bytes
) -> None:
    clip = encode_video(moving_face(), seconds=1.0, fps=8)
    await _post(run, astronaut_jpeg, "image/jpeg")  # warm-up: lazy imports, model threads
    with _WRITES.watch() as seen:
        assert await _post(run, astronaut_jpeg, "image/jpeg") == 200
        assert await _post(run, clip, "video/mp4") == 200
        assert await _post(run, b"not an image at all", "image/jpeg") == 415
    assert seen == [], f"files opened for writing during checks: {seen}"
