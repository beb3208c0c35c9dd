"""The video engine on clips the tests make: decoding and its limits, face tracks, the per-track
statistics and the video verdict, the contact sheet. Real tiny Xception, dlib HOG finder (fast;
the served MTCNN is the same ``Finder`` boundary)."""

from __future__ import annotations

import io
import json

import av
import numpy as np
import pytest
from PIL import Image

from detector.config import Band
from detector.errors import (
    CorruptVideo,
    NoFaceFound,
    NoFaceInVideo,
    UnsupportedVideo,
    VideoTimeout,
    VideoTooLarge,
    VideoTooLong,
)
from detector.faces import Box
from detector.finders import make_finder
from detector.model import Classifier
from detector.pipeline import Pipeline
from detector.preprocess import face_crop
from detector.video import (
    FrameFaces,
    VideoPipeline,
    decode_video,
    link_tracks,
    sheet_times,
    sniff_video,
)
from detector.video_results import TrackFrame, TrackResult, VideoLimits

from .conftest import TINY_CONFIG, encode
from .video_clips import (
    encode_animation,
    encode_streamed_webm,
    encode_video,
    moving_face,
    no_face,
    scene_cut,
    two_faces,
)


@pytest.fixture(scope="module")
def clips() -> dict[str, bytes]:
    face = moving_face()
    return {
        "mp4": encode_video(face),
        "mp4_faststart": encode_video(face, faststart=True),
        "webm": encode_video(face, container="webm", codec="libvpx-vp9"),
        "gif": encode_animation(face),
        "webp": encode_animation(face, fmt="WEBP"),
        "two": encode_video(two_faces()),
        "none": encode_video(no_face(), seconds=1.0, fps=5),
    }


@pytest.fixture()
def video(tiny_classifier: Classifier) -> VideoPipeline:
    return VideoPipeline(Pipeline(tiny_classifier, make_finder("hog")))


# --- recognising and decoding ------------------------------------------------------------------


def test_containers_are_recognised_by_content_and_stills_are_not_videos(
    clips: dict[str, bytes], astronaut_jpeg: bytes
) -> None:
    expected = {"mp4": "mp4", "mp4_faststart": "mp4", "webm": "matroska", "gif": "gif",
                "webp": "webp", "two": "mp4", "none": "mp4"}  # fmt: skip
    assert {name: sniff_video(data) for name, data in clips.items()} == expected
    still = np.asarray(Image.open(io.BytesIO(astronaut_jpeg)).convert("RGB"))
    for fmt in ("JPEG", "PNG", "GIF", "WEBP"):
        assert sniff_video(encode(still, fmt)) is None, fmt
    assert sniff_video(b"") is None and sniff_video(b"\x00" * 64) is None


@pytest.mark.parametrize("name", ["mp4", "mp4_faststart", "webm", "gif", "webp"])
def test_frames_are_sampled_evenly_from_every_container(
    clips: dict[str, bytes], name: str
) -> None:
    decoded = decode_video(clips[name])
    times = [f.t_s for f in decoded.frames]
    n = 20 if name.startswith(("mp4", "webm")) else 8  # 2 s at 10 fps; 8 frames of 100 ms
    assert len(times) == n
    assert times == sorted(times) and times[0] == 0.0
    assert np.diff(times) == pytest.approx(np.full(n - 1, 0.1), abs=0.011)
    assert (decoded.width, decoded.height) == (320, 240)
    assert decoded.duration_s == pytest.approx(n / 10, abs=0.11)
    # The face really moves left to right: frames differ and the first is the clip's first.
    first = decoded.frames[0].rgb
    assert first.shape == (240, 320, 3) and first.dtype == np.uint8
    assert np.abs(first.astype(int) - moving_face()(0, n).astype(int)).mean() < 12
    assert not np.array_equal(first, decoded.frames[-1].rgb)


def test_at_most_max_frames_are_sampled_spread_over_the_clip(clips: dict[str, bytes]) -> None:
    decoded = decode_video(clips["mp4"], VideoLimits(max_frames=5))
    assert [round(f.t_s, 1) for f in decoded.frames] == [0.0, 0.4, 0.8, 1.2, 1.6]


def test_without_a_duration_in_the_header_frames_are_still_spread_over_the_clip() -> None:
    data = encode_streamed_webm(moving_face(), seconds=3.0)
    with av.open(io.BytesIO(data)) as probe:
        assert probe.duration is None and probe.streams.video[0].duration is None
    decoded = decode_video(data, VideoLimits(max_frames=8))
    times = [f.t_s for f in decoded.frames]
    assert len(times) == 8 and times[0] == 0.0 and times[-1] >= 2.5
    assert max(np.diff(times)) <= 0.6  # no stretch of the clip left out
    assert decoded.duration_s == pytest.approx(2.9, abs=0.11)
    with pytest.raises(VideoTooLong):  # counted while decoding when the header is silent
        decode_video(data, VideoLimits(max_duration_s=1.5))


def test_large_frames_are_scaled_to_the_work_size_and_boxes_come_back_in_original_pixels(
    tiny_classifier: Classifier,
) -> None:
    data = encode_video(moving_face(640, 480, 300), seconds=0.6, fps=5)
    pipeline = VideoPipeline(
        Pipeline(tiny_classifier, make_finder("hog")), VideoLimits(work_side=320)
    )
    decoded = pipeline.decode(data)
    assert decoded.frames[0].rgb.shape == (240, 320, 3) and decoded.frames[0].scale == 2.0
    result = pipeline.analyze(data)
    box = result.tracks[0].sightings[0].box
    assert (result.width, result.height) == (640, 480)
    assert 110 <= box.width <= 180 and box.x2 <= 320  # the 300 px head starts at x=0


def test_corrupt_and_truncated_files_are_refused(clips: dict[str, bytes]) -> None:
    mp4, fast, webm = clips["mp4"], clips["mp4_faststart"], clips["webm"]
    garbage = mp4[:32] + bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))
    for name, data in {
        "moov at the end, cut": mp4[: len(mp4) // 2],
        "faststart, cut": fast[: len(fast) // 2],
        "webm, cut": webm[: len(webm) // 2],
        "garbage after the header": garbage,
        "header only": mp4[:12],
    }.items():
        with pytest.raises(CorruptVideo) as info:
            decode_video(data)
        assert "damaged or incomplete" in info.value.user_message, name


def test_what_is_not_a_video_is_refused_as_such(astronaut_jpeg: bytes) -> None:
    with pytest.raises(UnsupportedVideo):
        decode_video(astronaut_jpeg)


def test_each_limit_is_refused_with_its_own_words(clips: dict[str, bytes]) -> None:
    data = clips["mp4"]
    with pytest.raises(VideoTooLarge) as big:
        decode_video(data, VideoLimits(max_bytes=len(data) - 1))
    assert "MB" in big.value.user_message
    with pytest.raises(VideoTooLarge) as res:
        decode_video(data, VideoLimits(max_pixels=320 * 240 - 1))
    assert "320x240" in res.value.user_message
    with pytest.raises(VideoTooLong) as long:
        decode_video(data, VideoLimits(max_duration_s=1.5))
    assert "too long" in long.value.user_message and "2 s" in long.value.user_message
    with pytest.raises(VideoTimeout):
        decode_video(data, VideoLimits(decode_timeout_s=0.0))
    with pytest.raises(VideoTooLong):  # animated WebP: no header duration, counted frame by frame
        decode_video(clips["webp"], VideoLimits(max_duration_s=0.5))


# --- tracks and verdicts -----------------------------------------------------------------------


def test_one_moving_face_is_one_track_scored_on_its_own_crops(
    clips: dict[str, bytes], video: VideoPipeline, tiny_classifier: Classifier
) -> None:
    result = video.analyze(clips["mp4"])
    assert len(result.tracks) == 1 and result.kind == "video"
    track = result.tracks[0]
    assert track.frames == result.frames_sampled == result.frames_with_faces == 20
    assert (track.first_s, track.last_s) == (0.0, pytest.approx(1.9))
    xs = [s.box.x1 for s in track.sightings]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 120  # it follows the face across the frame
    # Every sighting's score is the classifier's on that frame's crop.
    decoded = video.decode(clips["mp4"])
    for frame, sighting in zip(decoded.frames, track.sightings, strict=True):
        crop, _ = face_crop(frame.rgb, sighting.box, TINY_CONFIG)
        assert tiny_classifier.predict(crop[None])[0] == pytest.approx(sighting.p_fake, abs=1e-5)
    assert track.p_fake == pytest.approx(np.mean([s.p_fake for s in track.sightings]))
    assert result.p_fake == track.p_fake and result.verdict is TINY_CONFIG.band(track.p_fake)


@pytest.mark.parametrize("name", ["webm", "gif", "webp"])
def test_other_containers_give_the_same_single_track(
    clips: dict[str, bytes], video: VideoPipeline, name: str
) -> None:
    result = video.analyze(clips[name])
    assert len(result.tracks) == 1 and result.tracks[0].frames == result.frames_sampled


def test_two_people_are_two_tracks_and_the_worse_one_decides(
    clips: dict[str, bytes], video: VideoPipeline
) -> None:
    result = video.analyze(clips["two"])
    assert len(result.tracks) == 2
    assert all(t.frames == 20 for t in result.tracks)
    left, right = sorted(result.tracks, key=lambda t: t.sightings[0].box.x1)
    assert max(s.box.x2 for s in left.sightings) < min(s.box.x1 for s in right.sightings)
    assert result.p_fake == max(t.p_fake for t in result.tracks)


def test_a_clip_without_a_face_has_no_verdict(
    clips: dict[str, bytes], video: VideoPipeline
) -> None:
    with pytest.raises(NoFaceInVideo) as info:
        video.analyze(clips["none"])
    assert isinstance(info.value, NoFaceFound)  # "no verdict for lack of a face", as for images
    assert "5 frames" in info.value.user_message


def _sighting(t: float, x: int, p: float = 0.5) -> TrackFrame:
    return TrackFrame(t, Box(x, 50, x + 60, 110), p)


def test_a_scene_cut_is_sampled_and_ends_the_tracks(video: VideoPipeline) -> None:
    data = encode_video(scene_cut(), seconds=2.0)  # the cut at 1.1 s
    decoded = video.decode(data)
    assert decoded.cuts == (pytest.approx(1.1),)
    times = [round(f.t_s, 1) for f in decode_video(data, VideoLimits(max_frames=4)).frames]
    assert times == [0.0, 0.5, 1.0, 1.1, 1.5]  # evenly spread, plus the cut's first frame
    result = video.analyze(data)
    # The same place, another person: two tracks, not one.
    assert [(t.first_s, t.last_s) for t in result.tracks] == [
        (0.0, pytest.approx(1.0)), (pytest.approx(1.1), pytest.approx(1.9))
    ]
    # A moving face is no cut.
    assert video.decode(encode_video(moving_face())).cuts == ()


def test_tracks_link_by_overlap_across_a_short_gap_and_split_far_apart_faces() -> None:
    frames = [
        [_sighting(0.0, 10), _sighting(0.0, 300)],
        [_sighting(0.1, 20)],  # the right face missed in one frame
        [_sighting(0.2, 300), _sighting(0.2, 30)],
        [_sighting(0.3, 40), _sighting(0.3, 160)],  # a new face in the middle
    ]
    tracks = link_tracks(frames)
    assert [[s.box.x1 for s in t] for t in tracks] == [[10, 20, 30, 40], [300, 300], [160]]
    # Past the gap a face that comes back is a new track.
    assert len(link_tracks([[_sighting(0, 10)], [], [], [], [_sighting(0.4, 10)]])) == 2


def test_track_statistics() -> None:
    scores = [0.1, 0.2, 0.9, 0.8, 0.3, 0.2]
    track = TrackResult(
        1, tuple(_sighting(i / 10, 10, p) for i, p in enumerate(scores)), Band.UNCERTAIN, 0.7
    )
    assert track.p_fake == pytest.approx(np.mean(scores))
    assert track.p_max == 0.9 and track.p_median == pytest.approx(0.25)
    assert track.p_top_mean == pytest.approx((0.9 + 0.8) / 2)  # the top third
    assert track.share_fake == pytest.approx(2 / 6)
    assert [b["t_s"] for b in track.boxes_sample()] == [0.0, 0.2, 0.3, 0.5]


def test_a_one_frame_sighting_does_not_decide_when_a_real_track_exists(
    clips: dict[str, bytes], video: VideoPipeline
) -> None:
    decoded = video.decode(clips["mp4"])
    n = len(decoded.frames)
    inputs = np.zeros((1, 64, 64, 3), np.uint8)
    found = [FrameFaces(i, (Box(10 + i, 50, 80 + i, 120),), inputs) for i in range(n)]
    # Frame 5 also has a spurious detection far away, scored high.
    two = np.zeros((2, 64, 64, 3), np.uint8)
    found[5] = FrameFaces(5, (Box(15, 50, 85, 120), Box(250, 10, 300, 60)), two)
    scores = [np.array([0.2]) for _ in range(n)]
    scores[5] = np.array([0.2, 0.95])
    result = video.finish(decoded, found, scores, {})
    assert len(result.tracks) == 2
    assert result.top.frames == n and result.p_fake == pytest.approx(0.2)
    assert result.verdict is Band.REAL
    # Alone, a one-frame track does decide (there is nothing else to go on).
    alone = [FrameFaces(i, (), np.zeros((0, 64, 64, 3), np.uint8)) for i in range(n)]
    alone[5] = FrameFaces(5, (Box(250, 10, 300, 60),), inputs)
    lone_scores = [np.zeros(0) for _ in range(n)]
    lone_scores[5] = np.array([0.95])
    only = video.finish(decoded, alone, lone_scores, {})
    assert only.verdict is Band.FAKE and only.frames_with_faces == 1


def test_the_json_is_stable(clips: dict[str, bytes], video: VideoPipeline) -> None:
    out = json.loads(json.dumps(video.analyze(clips["two"]).to_dict()))
    assert out["kind"] == "video" and out["rule"] == "mean"
    assert set(out) == {
        "kind", "verdict", "p_fake", "rule", "deciding_track", "tracks", "frames_sampled",
        "frames_with_faces", "faces_too_small", "duration_s", "width", "height", "container",
        "model", "timings_ms",
    }  # fmt: skip
    track = out["tracks"][0]
    assert set(track) == {
        "track", "verdict", "p_fake", "p_max", "p_median", "p_top_mean", "share_fake", "frames",
        "first_s", "last_s", "boxes_sample", "frame_scores",
    }  # fmt: skip
    assert track["frames"] == len(track["frame_scores"]) == 20
    assert all(set(b) == {"t_s", "box"} and len(b["box"]) == 4 for b in track["boxes_sample"])


def test_the_contact_sheet_shows_the_most_suspicious_frames(
    clips: dict[str, bytes], video: VideoPipeline
) -> None:
    result = video.analyze(clips["two"], annotate=True)
    assert result.contact_sheet_jpeg is not None
    sheet = Image.open(io.BytesIO(result.contact_sheet_jpeg))
    assert sheet.format == "JPEG"
    # Four 400x240 frames scaled to 360 px wide, two by two, 4 px gaps.
    assert sheet.size == (2 * 360 + 3 * 4, 2 * 216 + 3 * 4)
    chosen = sheet_times(result.tracks)
    best: dict[float, float] = {}  # the larger score of the two faces, per frame
    for s in (s for t in result.tracks for s in t.sightings):
        best[s.t_s] = max(best.get(s.t_s, 0.0), s.p_fake)
    assert len(chosen) == 4 and chosen == sorted(chosen)
    assert min(best[t] for t in chosen) >= sorted(best.values())[-4]
    assert video.analyze(clips["two"]).contact_sheet_jpeg is None  # only on request
