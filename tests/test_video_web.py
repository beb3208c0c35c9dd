"""``POST /v1/check`` with a video: the per-track JSON (the same object as ``check --json`` on a
video), the contact sheet as PNG, refusals with their status codes; the real detector on a real
clip, raw body and multipart."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image

from bot.core import ModelCard
from bot.main import build_pipeline, service_options
from detector.errors import CorruptVideo, NoFaceInVideo, VideoTooLong
from detector.service import DetectorService
from detector.video import VideoPipeline
from detector.video_results import VideoLimits

from .standins.fakes import FakeDetector, always, video_analysis
from .standins.web_harness import running_web, web_settings
from .video_clips import encode_video, no_face, two_faces


async def post(url: str, data: Any, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(url, data=data, **kw) as r:
        body = await r.json() if r.content_type == "application/json" else await r.read()
        return r.status, body


def form(data: bytes, name: str = "clip.mp4", ctype: str = "video/mp4") -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("file", data, filename=name, content_type=ctype)
    return f


async def test_a_video_answers_per_track_json_and_the_contact_sheet() -> None:
    video = video_analysis([0.1, 0.2], [0.9, 0.7])
    detector = FakeDetector(always(video))
    async with running_web(detector) as run:
        status, body = await post(f"{run.url}/v1/check?annotate=1", form(b"clip"))
        png_status, png = await post(
            f"{run.url}/v1/check", form(b"clip"), headers={"Accept": "image/png"}
        )
    assert status == 200 and detector.seen == [b"clip", b"clip"]
    assert body["kind"] == "video" and body["path"] == "clip.mp4" and body["error"] is None
    expected = json.loads(json.dumps(video.to_dict()))
    assert {k: body[k] for k in expected} == expected  # the engine's object, unchanged
    assert [t["p_fake"] for t in body["tracks"]] == [0.15, 0.8]
    assert body["headline"].startswith("🟥 Likely manipulated — 80%")
    assert "not been calibrated on real deepfake videos" in body["caveat"]
    with Image.open(io.BytesIO(base64.b64decode(body["annotated_png"]))) as sheet:
        assert sheet.format == "PNG"
    assert png_status == 200 and png.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (VideoTooLong(300, 120), 413, "too_large"),
        (CorruptVideo("cut"), 415, "unreadable"),
        (NoFaceInVideo(32), 422, "no_face"),
    ],
)
async def test_video_refusals_have_their_status(error: Exception, status: int, code: str) -> None:
    async with running_web(FakeDetector(always(error))) as run:
        got, body = await post(f"{run.url}/v1/check", form(b"clip"))
    assert got == status and body["error"]["code"] == code


async def test_a_video_over_the_video_limit_is_refused_before_reading_it() -> None:
    detector = FakeDetector(always(video_analysis([0.2])))
    settings = web_settings(max_video_bytes=1000)
    async with running_web(detector, settings) as run:
        got, body = await post(
            f"{run.url}/v1/check", b"x" * 2000, headers={"Content-Type": "video/mp4"}
        )
    assert got == 413 and body["error"]["code"] == "too_large" and detector.seen == []


async def test_the_real_detector_on_a_real_clip(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPFAKE_BOT_FACE_FINDER", "hog")  # fast; the same Finder boundary
    settings = web_settings(deepfake_bot_weights=tiny_checkpoint, detector_precision="fp32",
                            detector_threads=2, video_frames=5)  # fmt: skip
    pipeline = build_pipeline(settings)
    clip = encode_video(two_faces(), seconds=1.0, fps=5)
    expected = VideoPipeline(pipeline, VideoLimits(max_frames=5)).analyze(clip).to_dict()
    detector = DetectorService(pipeline, service_options(settings))
    card = ModelCard.from_config(pipeline.classifier.config)
    async with running_web(detector, settings, card=card) as run:
        raw_status, raw = await post(  # undeclared type: the content decides
            f"{run.url}/v1/check", clip, headers={"Content-Type": "application/octet-stream"}
        )
        _, multipart = await post(f"{run.url}/v1/check", form(clip))
        empty_status, empty = await post(
            f"{run.url}/v1/check", form(encode_video(no_face(), seconds=1.0, fps=3))
        )
    assert raw_status == 200 and raw["kind"] == "video"
    for body in (raw, multipart):
        assert [t["frame_scores"] for t in body["tracks"]] == [
            t["frame_scores"] for t in expected["tracks"]
        ]
        assert body["frames_sampled"] == 5 and len(body["tracks"]) == 2
    assert empty_status == 422 and "any of the 3 frames" in empty["error"]["message"]
