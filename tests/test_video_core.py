"""Videos in the platform-neutral core: which refs are videos, their size limit, the reply
(one line per face track, the contact sheet), the video errors' words, and videos switched off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from bot.core import (
    Admission,
    CheckLimits,
    CheckService,
    ImageRef,
    Problem,
    Refusal,
    SlidingWindowLimiter,
    Verdict,
    VideoVerdict,
    combined_text,
    error_reply,
)
from bot.core.replies import VIDEO_CAVEAT, video_reply
from detector.config import Band
from detector.errors import (
    CorruptVideo,
    NoFaceInVideo,
    UnsupportedVideo,
    VideoTimeout,
    VideoTooLarge,
    VideoTooLong,
)

from .standins.fakes import ANNOTATED, FakeDetector, always, analysis, video_analysis

MB = 1024 * 1024


def fetch_of(data: bytes) -> Callable[[], Awaitable[bytes]]:
    async def fetch() -> bytes:
        fetch.calls += 1  # type: ignore[attr-defined]
        return data

    fetch.calls = 0  # type: ignore[attr-defined]
    return fetch


def service(detector: FakeDetector, *, videos: bool = True, video_mb: int = 2) -> CheckService:
    return CheckService(
        detector,
        limits=CheckLimits(max_image_bytes=4 * MB, videos=videos, max_video_bytes=video_mb * MB),
        admission=Admission(4, 8),
        rate_limiter=SlidingWindowLimiter(100),
    )


def test_the_reply_has_a_line_per_track_and_the_contact_sheet() -> None:
    video = video_analysis([0.1, 0.2, 0.1, 0.2], [0.9, 0.8, 0.95, 0.4])
    reply = video_reply(video)
    assert isinstance(reply, Verdict)  # every adapter shows it like an image verdict
    assert reply.band is Band.FAKE and reply.p_fake == pytest.approx(0.7625)
    text = reply.text()
    assert text.startswith("🟥 Likely manipulated — 76% probability of a face manipulation")
    assert "Checked 4 frames of a 1.0 s video; 2 faces followed" in text
    assert (
        "Face 2 (0.0-0.8 s, 4 frames): 🟥 76% on average, peak 95%, median 85%; "
        "75% of frames judged manipulated"
    ) in text
    assert "Face 1 (0.0-0.8 s, 4 frames): 🟩 15% on average" in text
    assert VIDEO_CAVEAT in text
    assert [s.label() for s in reply.face_scores] == ["Face 1 (0.0-0.8 s)", "Face 2 (0.0-0.8 s)"]
    assert "video" in reply.summary()


def test_a_one_frame_track_and_an_animation_are_worded_as_such() -> None:
    text = video_reply(video_analysis([0.5], container="gif")).text()
    assert "Checked 1 frame of a 0.2 s animation; 1 face followed." in text
    assert "Face 1 (at 0.0 s, 1 frame)" in text


@pytest.mark.parametrize(
    ("error", "problem", "words"),
    [
        (VideoTooLong(300.0, 120.0), Problem.TOO_LARGE, "too long to check (300 s; the limit"),
        (VideoTooLarge("big"), Problem.TOO_LARGE, "too large"),
        (CorruptVideo("cut"), Problem.UNREADABLE, "damaged or incomplete"),
        (UnsupportedVideo("x"), Problem.UNREADABLE, "not a video I can read"),
        (VideoTimeout("slow"), Problem.UNREADABLE, "too long to decode"),
        (NoFaceInVideo(32), Problem.NO_FACE, "any of the 32 frames"),
    ],
)
def test_video_errors_get_their_own_words(error: Exception, problem: Problem, words: str) -> None:
    refusal = error_reply(error)
    assert refusal.problem is problem and words in refusal.message


async def test_a_video_is_checked_through_analyze_media_with_progress() -> None:
    detector = FakeDetector(always(video_analysis([0.2, 0.3, 0.1])))
    seen: list[tuple[int, int]] = []
    reply = await service(detector).check(
        "u", ImageRef(fetch_of(b"clip"), mime_type="video/mp4"),
        on_progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    assert isinstance(reply, VideoVerdict) and reply.image == ANNOTATED
    assert reply.video is not None and reply.video.frames_sampled == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]


async def test_videos_have_their_own_size_limit_before_download() -> None:
    detector = FakeDetector(always(video_analysis([0.2])))
    fetch = fetch_of(b"clip")
    ref = ImageRef(fetch, mime_type="video/mp4", declared_size=3 * MB)
    reply = await service(detector).check("u", ref)
    assert isinstance(reply, Refusal) and reply.problem is Problem.TOO_LARGE
    assert "2 MB" in reply.message and fetch.calls == 0  # type: ignore[attr-defined]
    # The same size as an image is within the image limit.
    image = ImageRef(fetch_of(b"img"), mime_type="image/png", declared_size=3 * MB)
    detector.script = always(analysis(0.2))
    assert isinstance(await service(detector).check("u", image), Verdict)
    # Undeclared bytes over the video limit are refused after download too.
    big = ImageRef(fetch_of(b"x" * (2 * MB + 1)), file_name="clip.mp4")
    refused = await service(detector).check("u", big)
    assert isinstance(refused, Refusal) and refused.problem is Problem.TOO_LARGE


async def test_with_videos_off_they_are_refused_without_download() -> None:
    detector = FakeDetector(always(video_analysis([0.2])))
    fetch = fetch_of(b"clip")
    for ref in (ImageRef(fetch, mime_type="video/mp4"), ImageRef(fetch, file_name="a.webm")):
        reply = await service(detector, videos=False).check("u", ref)
        assert isinstance(reply, Refusal) and reply.problem is Problem.UNSUPPORTED_MEDIA
    assert fetch.calls == 0 and detector.seen == []  # type: ignore[attr-defined]


async def test_an_album_with_a_video_names_it_in_the_combined_reply() -> None:
    clips = {b"a": video_analysis([0.9, 0.9]), b"b": analysis(0.1)}
    detector = FakeDetector(lambda data: clips[data])
    replies = await service(detector).check_many(
        "u", [ImageRef(fetch_of(b"a"), mime_type="video/mp4"), ImageRef(fetch_of(b"b"))]
    )
    text = combined_text(replies)
    assert "Image 1: 🟥 Likely manipulated — 90%, video" in text
    assert "Image 2: 🟩 No manipulation detected — 10%" in text


def test_the_help_names_videos_only_when_they_are_checked() -> None:
    from bot.core.texts import limits_text

    on = limits_text(CheckLimits(videos=True, max_video_bytes=20 * MB), 10)
    off = limits_text(CheckLimits(videos=False), 10)
    assert "videos and animations (MP4, WebM, MOV, GIF, video notes) up to 20 MB" in on
    assert "still images only" in off and "video notes" not in off
