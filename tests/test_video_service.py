"""Videos through the async service: routing by content, progress, admission weight, and the
chunked scoring that keeps image checks moving while a video is scored."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable

import numpy as np
import pytest
from PIL import Image

from detector.errors import DetectorBusy, NoFaceInVideo
from detector.finders import make_finder
from detector.model import Classifier
from detector.pipeline import Pipeline
from detector.results import Analysis
from detector.service import DetectorService, ServiceOptions
from detector.video_results import VideoAnalysis

from .conftest import encode
from .video_clips import encode_animation, encode_video, moving_face, no_face


@pytest.fixture(scope="module")
def clip() -> bytes:
    return encode_video(moving_face())  # 20 frames, one face


@pytest.fixture()
def pipeline(tiny_classifier: Classifier) -> Pipeline:
    return Pipeline(tiny_classifier, make_finder("hog"))


async def test_media_are_routed_by_content(
    pipeline: Pipeline, clip: bytes, astronaut_jpeg: bytes
) -> None:
    still = np.asarray(Image.open(io.BytesIO(astronaut_jpeg)).convert("RGB"))
    async with DetectorService(pipeline) as service:
        assert isinstance(await service.analyze_media(astronaut_jpeg), Analysis)
        assert isinstance(await service.analyze_media(encode(still, "GIF")), Analysis)
        video = await service.analyze_media(clip, annotate=True)
        assert isinstance(video, VideoAnalysis) and video.contact_sheet_jpeg is not None
        gif = await service.analyze_media(encode_animation(moving_face(), frames=4))
        assert isinstance(gif, VideoAnalysis) and gif.frames_sampled == 4
        assert service.stats.videos == 2 and service.pending == 0


async def test_service_and_sync_pipeline_agree(pipeline: Pipeline, clip: bytes) -> None:
    from detector.video import VideoPipeline

    expected = VideoPipeline(pipeline).analyze(clip)
    async with DetectorService(pipeline, ServiceOptions(max_batch=3)) as service:
        got = await service.analyze_video(clip)
    assert [t.to_dict()["frame_scores"] for t in got.tracks] == [
        t.to_dict()["frame_scores"] for t in expected.tracks
    ]
    assert max(service.stats.batch_sizes) <= 3  # a video's crops never exceed a batch


async def test_progress_counts_frames_up_to_all_of_them(pipeline: Pipeline, clip: bytes) -> None:
    seen: list[tuple[int, int]] = []
    async with DetectorService(pipeline) as service:
        await service.analyze_video(clip, on_progress=lambda d, total: seen.append((d, total)))
    assert seen[-1] == (20, 20) and len(seen) > 1
    assert [d for d, _ in seen] == sorted({d for d, _ in seen})
    assert {t for _, t in seen} == {20}


async def test_a_video_counts_as_several_requests(
    pipeline: Pipeline, clip: bytes, astronaut_jpeg: bytes
) -> None:
    async with DetectorService(pipeline, ServiceOptions(max_pending=4, video_weight=4)) as service:
        task = asyncio.create_task(service.analyze_video(clip))
        while service.pending == 0:
            await asyncio.sleep(0)
        assert service.pending == 4
        with pytest.raises(DetectorBusy):
            await service.analyze(astronaut_jpeg)
        with pytest.raises(DetectorBusy):
            await service.analyze_video(clip)
        await task
        assert service.pending == 0
        assert isinstance(await service.analyze(astronaut_jpeg), Analysis)


async def test_an_image_is_not_held_behind_a_whole_video(
    pipeline: Pipeline, clip: bytes, astronaut_jpeg: bytes
) -> None:
    finished: list[str] = []

    async def run(name: str, work: Awaitable[object]) -> None:
        await work
        finished.append(name)

    async with DetectorService(pipeline, ServiceOptions(max_batch=2)) as service:
        video = asyncio.create_task(run("video", service.analyze_video(clip)))
        while service.stats.batches == 0:  # the video's crops are being scored
            await asyncio.sleep(0.001)
        await asyncio.gather(run("image", service.analyze(astronaut_jpeg)), video)
    assert finished == ["image", "video"]


async def test_no_face_in_a_video_is_an_error_and_counted(pipeline: Pipeline) -> None:
    async with DetectorService(pipeline) as service:
        with pytest.raises(NoFaceInVideo):
            await service.analyze_media(encode_video(no_face(), seconds=1.0, fps=4))
        assert service.stats.failed == 1 and service.pending == 0
